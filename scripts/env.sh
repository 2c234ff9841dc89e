# Source me: `source scripts/env.sh` puts the vjepa2_ros venv and built workspace in this shell.
# Works from any directory; safe to source twice.
_vjepa_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_vjepa_venv="${VJEPA_VENV:-$_vjepa_root/.venv}"
if [ -z "${ROS_DISTRO:-}" ] || [ "${VJEPA_ROS_FROM_PYPI:-}" = 1 ]; then
  # ROS 2 Kilted from PyPI wheels lives inside the venv prefix.
  export VJEPA_ROS_FROM_PYPI=1
  case ":${AMENT_PREFIX_PATH:-}:" in *":$_vjepa_venv:"*) ;; *) export AMENT_PREFIX_PATH="$_vjepa_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}";; esac
  case ":${CMAKE_PREFIX_PATH:-}:" in *":$_vjepa_venv:"*) ;; *) export CMAKE_PREFIX_PATH="$_vjepa_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}";; esac
fi
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# shellcheck disable=SC1091
. "$_vjepa_venv/bin/activate"
if [ -f "$_vjepa_root/ros2_ws/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  . "$_vjepa_root/ros2_ws/install/setup.bash"
fi
unset _vjepa_root _vjepa_venv
