#!/usr/bin/env bash
# How fast can slobench's load generator drive a server before it becomes the bottleneck?
# Starts the mock OpenAI-compatible server (fixed pace: first token after 5 ms, then one every
# TPOT_S) in its own process and runs `slobench run --engine openai` at increasing rates; prints,
# per rate, the achieved arrival rate, client lag (actual − intended send time), tokens/s and the share of
# measured tokens that arrived in bursts (docs/capacity.md "Token bursts"; INVALID above 5%).
#   scripts/bench_client.sh [WORKLOAD] [RATES...]     e.g. scripts/bench_client.sh chatbot 10 20 40 80
set -euo pipefail
WORKLOAD=${1:-chatbot}
shift || true
RATES=${*:-10 20 40 80}
N=${N:-400}
TPOT_S=${TPOT_S:-0.002}
PORT=${PORT:-18765}
OUT=$(mktemp -d)
python -m slobench.testing.mock_server --port "$PORT" --tpot-s "$TPOT_S" > "$OUT/mock.log" 2>&1 &
MOCK=$!
trap 'kill $MOCK 2>/dev/null || true' EXIT
sleep 2
printf "%-8s %-10s %-14s %-14s %-12s %-10s %-8s\n" rate achieved lag_p50_ms lag_p99_ms lag_max_ms tokens/s bursts
for R in $RATES; do
  slobench run --engine openai --url "http://127.0.0.1:$PORT/v1" -w "$WORKLOAD" -n "$N" --rate "$R" \
    --out "$OUT/r$R" > /dev/null
  python - "$OUT/r$R" "$R" <<'PY'
import json, pathlib, sys
from slobench.capacity.validity import burst_share
from slobench.metrics.attainment import measured_flags
from slobench.report.results import load_records
run = next(pathlib.Path(sys.argv[1]).glob("*/summary.json")).parent
s = json.loads((run / "summary.json").read_text())
df = load_records(run)
b = burst_share(df, measured_flags(df["arrival_s"], float(s.get("warmup_s") or 0.0)))
print(f"{sys.argv[2]:<8} {s['achieved_rate_rps']:<10.2f} {s['client_lag_p50_s']*1e3:<14.1f} "
      f"{s['client_lag_p99_s']*1e3:<14.1f} {s['client_lag_s']*1e3:<12.1f} {s['tokens']/s['client_wall_s']:<10.0f} {b:<8.1%}")
PY
done
