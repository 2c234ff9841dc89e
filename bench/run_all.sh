#!/usr/bin/env bash
# Run every benchmark, then regenerate bench/README.md from bench/results/*.json.
# Usage (what `make bench` runs): source scripts/env.sh && bash bench/run_all.sh [name ...]
#   names: sim data planning training perception planner_node stop_latency landscape reach action (default: all, in that order)
# GPU numbers: bash bench/gpu_check.sh on a CUDA machine (installs what it needs; not part of this CPU run).
# Each benchmark keeps its default runtime modest (about 0.5-2 minutes on 2 CPU cores). A failing benchmark is
# reported and the others still run; the exit status is non-zero if any failed. The README is rebuilt from
# whatever results exist (older JSON files are kept for benchmarks that failed or were not selected).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT" || exit 1
PY="${PYTHON:-python}"
if ! "$PY" -c "import rclpy, torch, vjepa_core, vjepa_interfaces.msg" 2>/dev/null; then
  echo "run_all.sh: the venv with rclpy and the built workspace is not active: run 'source scripts/env.sh' first" >&2
  exit 2
fi
mkdir -p bench/results

run() {  # name, command...
  local name="$1"; shift
  echo
  echo "=== $name: $*"
  local t0=$SECONDS
  if "$@"; then
    echo "=== $name: ok ($((SECONDS - t0)) s)"
  else
    echo "=== $name: FAILED (status $?, $((SECONDS - t0)) s)" >&2
    FAILED+=("$name")
  fi
}

FAILED=()
SELECTED=("$@")
[ ${#SELECTED[@]} -eq 0 ] && SELECTED=(sim data planning training perception planner_node stop_latency landscape reach action)
for name in "${SELECTED[@]}"; do
  case "$name" in
    sim)          run sim "$PY" bench/bench_sim.py ;;
    data)         run data "$PY" bench/bench_data.py ;;
    planning)     run planning "$PY" bench/bench_planning.py ;;
    training)     run training "$PY" bench/bench_training.py ;;
    perception)   run perception "$PY" bench/bench_perception.py ;;
    planner_node) run planner_node "$PY" bench/bench_planner_node.py ;;
    stop_latency) run stop_latency "$PY" bench/bench_stop_latency.py ;;
    landscape)    run landscape vjepa-bench landscape --config tiny --threads 1 --json bench/results/landscape.json ;;
    reach)        run reach "$PY" bench/bench_reach.py ;;
    action)       run action "$PY" bench/bench_action.py ;;
    *) echo "run_all.sh: unknown benchmark '$name' (sim data planning training perception planner_node stop_latency landscape reach action)" >&2
       FAILED+=("$name") ;;
  esac
done

echo
"$PY" bench/make_readme.py || FAILED+=(make_readme)
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "run_all.sh: failed: ${FAILED[*]}" >&2
  exit 1
fi
echo "run_all.sh: all benchmarks done; see bench/README.md"
