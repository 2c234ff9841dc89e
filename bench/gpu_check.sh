#!/usr/bin/env bash
# One-command GPU check (issue 18) for a clean machine with one CUDA GPU (H100/H200), in under 8 minutes:
#   1. `make setup` (venv, pinned dependencies, workspace build),
#   2. onnxruntime-gpu in place of onnxruntime, and TensorRT 10 for torch's CUDA major version,
#   3. bench/gpu_bench.py: the unit tests marked `gpu`, ViT-L / ViT-g encoder ms per frame (torch bf16,
#      onnxruntime CUDA, TensorRT fp16; random weights of the released architectures: timing only) and the ViT-g
#      AC plan at the paper's settings (800 x 10, H=1, torch bf16) -> bench/results/gpu.json,
#   4. bench/make_readme.py: bench/README.md with the GPU table.
# Each stage has a time limit inside the overall budget; what does not fit is recorded as skipped, with the reason.
#
# Usage: bash bench/gpu_check.sh [--dry-run] [--out FILE] [--budget SECONDS]
#   --dry-run   no installs, no GPU: the same stages on CPU with the tiny fixture (GPU tests only collected);
#               writes FILE (default: a temp folder, never bench/results/) and prints the markdown table.
#               Needs the project's venv (make setup) already built.
#   --budget    seconds for the whole check (default 470; the dry run's default is 300).
# Environment: VJEPA_TRT_SPEC overrides the TensorRT requirement (default: tensorrt-cu<CUDA major>==10.16.1.11).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT" || exit 1

DRY=0
OUT=""
BUDGET=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (--dry-run, --out FILE, --budget SECONDS)" >&2; exit 2 ;;
  esac
  shift
done
START=$(date +%s)
if [ "$DRY" = 1 ]; then BUDGET="${BUDGET:-300}"; else BUDGET="${BUDGET:-470}"; fi
DEADLINE=$((START + BUDGET))
say() { printf '[gpu_check %3ds] %s\n' "$(( $(date +%s) - START ))" "$*"; }
left() { local l=$((DEADLINE - $(date +%s))); [ "$l" -lt 1 ] && l=1; echo "$l"; }  # timeout 0 would mean none

if [ "$DRY" = 1 ]; then
  OUT="${OUT:-$(mktemp -d /tmp/vjepa_gpu_dryrun.XXXXXX)/gpu.json}"
  if ! python -c "import torch, onnxruntime, vjepa_core" 2>/dev/null; then
    if [ -f scripts/env.sh ] && [ -x .venv/bin/python ]; then
      # shellcheck disable=SC1091
      source scripts/env.sh
    else
      echo "gpu_check.sh --dry-run: no venv with vjepa_core: run 'make setup' first" >&2; exit 2
    fi
  fi
  say "dry run: no installs, CPU, tiny models -> $OUT"
else
  OUT="${OUT:-$ROOT/bench/results/gpu.json}"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  say "make setup (venv, pinned dependencies, workspace build)"
  if ! timeout "$(left)" make setup; then
    echo "gpu_check.sh: make setup failed or ran out of the ${BUDGET} s budget" >&2; exit 1
  fi
  # shellcheck disable=SC1091
  source scripts/env.sh
  CUDA_MAJOR="$(python -c 'import torch; print((torch.version.cuda or "").split(".")[0])')"
  if [ -z "$CUDA_MAJOR" ] || ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check.sh: torch $(python -c 'import torch; print(torch.__version__)') sees no CUDA GPU" \
         "(CPU build of torch, or no driver); nothing to measure" >&2
    exit 1
  fi
  TRT_SPEC="${VJEPA_TRT_SPEC:-tensorrt-cu${CUDA_MAJOR}==10.16.1.11}"
  say "onnxruntime-gpu (replaces onnxruntime: both provide the onnxruntime module) and $TRT_SPEC (CUDA $CUDA_MAJOR)"
  python -m pip uninstall -q -y onnxruntime >/dev/null 2>&1
  if ! timeout "$(left)" python -m pip install -q --disable-pip-version-check onnxruntime-gpu "$TRT_SPEC"; then
    echo "gpu_check.sh: installing onnxruntime-gpu / $TRT_SPEC failed; measuring what works" >&2
  fi
fi

say "stages (tests, encoders, plan) within $(left) s"
python bench/gpu_bench.py --out "$OUT" --deadline "$DEADLINE" $([ "$DRY" = 1 ] && echo --dry-run)
STATUS=$?

if [ "$DRY" = 1 ]; then
  python bench/make_readme.py --results "$(dirname "$OUT")" --section gpu --stdout || STATUS=1
else
  python bench/make_readme.py || STATUS=1
fi
say "done (status $STATUS, budget ${BUDGET} s): $OUT"
exit $STATUS
