#!/usr/bin/env bash
# `make demo` (after `make setup`): one closed-loop reach episode in the simulator with the shipped model.
# sim_node, encoder_node and planner_node run as separate processes over Fast DDS; the planner gets a goal image
# rendered for a random target >= 10 cm away and plans with CEM on the V-JEPA 2-AC world model trained by this
# suite (models/sim_reach). Every planning step is printed (energy, distance to target), then the result.
# Pictures (start / goal / final frames, distance and energy per step): runs/demo/demo_episodes/episode_000.png
# Options: DEMO_SEED=3 (another episode), DEMO_EPISODES=5, DEMO_OUT=dir.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f models/sim_reach/vjepa2_sim.pt ]; then
  echo "demo: models/sim_reach is missing; rebuild it with the pipeline in docs/sim_pipeline.md" >&2
  exit 1
fi
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
exec vjepa-sim demo --model models/sim_reach --seed "${DEMO_SEED:-0}" --episodes "${DEMO_EPISODES:-1}" \
  --out "${DEMO_OUT:-runs/demo}"
