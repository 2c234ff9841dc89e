#!/usr/bin/env bash
# One-command, idempotent set-up of vjepa2_ros:
#   1. a Python venv in .venv (with the system site-packages when a ROS 2 distro is sourced, so its rclpy is used),
#   2. pinned Python dependencies; the ROS 2 Kilted wheels from PyPI only when no ROS 2 distro is sourced,
#   3. the CMake path workarounds those wheels need (see ../shared/ENVIRONMENT.md),
#   4. `colcon build --symlink-install` of ros2_ws/src and the root metapackage,
#   5. the ament_python packages installed in editable mode so `vjepa-*` console scripts are on the venv's PATH.
# Each step is skipped when its inputs did not change since the last successful run (stamp files in .venv),
# so a second run finishes in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VJEPA_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3}"
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

if [ -n "${ROS_DISTRO:-}" ]; then
  ROS_MODE="system"
  log "ROS 2 '${ROS_DISTRO}' is sourced: using it (the PyPI ROS wheels are not installed)"
else
  ROS_MODE="pypi"
  log "no ROS 2 sourced: installing ROS 2 Kilted from PyPI wheels into ${VENV}"
fi

req_files=(requirements/python.txt requirements/dev.txt)
[ "$ROS_MODE" = "pypi" ] && req_files+=(requirements/ros-kilted.txt)
if [ "${1:-}" = "--print-plan" ]; then  # what a run would do, without doing it (used by the tests)
  echo "ros_mode=$ROS_MODE"
  echo "venv_flags=$([ "$ROS_MODE" = system ] && echo --system-site-packages)"
  echo "requirements=${req_files[*]}"
  exit 0
fi

# 1. venv ---------------------------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv ${VENV}"
  if [ "$ROS_MODE" = "system" ]; then
    "$PYTHON_BIN" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON_BIN" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)
# Some machines configure file:// extra indexes that do not exist; pip warns once per package. Keep errors only.
pip_quiet() { "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

# 2. Python dependencies ---------------------------------------------------------------------------------------
deps_hash="$(hash_of "${req_files[@]}")-$ROS_MODE"
if [ "$(cat "$VENV/.stamp-deps" 2>/dev/null)" != "$deps_hash" ]; then
  log "installing pinned Python dependencies (first time: a few minutes)"
  # torch first and alone, so nothing can pull a CUDA build through a range.
  pip_quiet install "torch==2.13.0"
  args=()
  for f in "${req_files[@]}"; do args+=(-r "$f"); done
  pip_quiet install "${args[@]}"
  echo "$deps_hash" > "$VENV/.stamp-deps"
else
  log "Python dependencies up to date"
fi

# 3. CMake path workarounds for the PyPI ROS wheels -------------------------------------------------------------
if [ "$ROS_MODE" = "pypi" ]; then
  "$PY" "$ROOT/scripts/fix_wheel_cmake.py" "$VENV"
  # shellcheck disable=SC1091
  export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
fi
export PATH="$VENV/bin:$PATH"

# 4. colcon build ---------------------------------------------------------------------------------------------
src_hash="$(find ros2_ws/src package.xml CMakeLists.txt launch config \
             \( -name package.xml -o -name setup.py -o -name setup.cfg -o -name CMakeLists.txt \
                -o -name '*.msg' -o -name '*.srv' -o -name '*.action' -o -path '*/resource/*' \
                -o -path 'launch/*' -o -path 'config/*' \) -not -path '*/__pycache__/*' -type f 2>/dev/null \
             | sort | xargs cat | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.stamp-build" 2>/dev/null)" != "$src_hash-$ROS_MODE" ] || [ ! -f ros2_ws/install/setup.bash ]; then
  log "colcon build (ros2_ws/src and the vjepa2_ros metapackage)"
  (cd ros2_ws && "$PY" -m colcon build --symlink-install --base-paths src .. \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$PY" --event-handlers console_cohesion- summary+)
  # 5. editable installs: console scripts (vjepa-export, vjepa-sim, ...) on the venv PATH, imports without sourcing.
  for pkg in vjepa_core vjepa_perception vjepa_planner vjepa_sim vjepa_training; do
    pip_quiet install --no-deps --no-build-isolation -e "ros2_ws/src/$pkg" 2>/dev/null \
      || "${PIP[@]}" install --no-deps --no-build-isolation -e "ros2_ws/src/$pkg"
  done
  echo "$src_hash-$ROS_MODE" > "$VENV/.stamp-build"
else
  log "workspace build up to date"
fi
log "ready: source scripts/env.sh (or use the Makefile targets)"
