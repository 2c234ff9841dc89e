#!/usr/bin/env bash
# `make demo` (after `make setup`): closed-loop episodes in the simulator with a shipped model.
# sim_node, encoder_node and planner_node run as separate processes over Fast DDS; the planner gets goal images
# rendered by the simulator and plans with CEM on the V-JEPA 2-AC world model trained by this suite. Every
# planning step is printed (energy, action, distance), then the result.
#   DEMO_TASK=reach (default): reach a random target >= 10 cm away (models/sim_reach);
#   DEMO_TASK=grasp | reach_object | pick_place: the paper's manipulation tasks with a cup or a box, through
#     planner_node's ReachGoals action (pick_place: three sub-goal images) (models/sim_manip).
# Pictures (start / goal / final frames, distance and energy per step): runs/demo/demo_episodes/episode_000.png
# Options: DEMO_SEED=3 (another episode), DEMO_EPISODES=5, DEMO_OUT=dir.
set -euo pipefail
cd "$(dirname "$0")/.."
task="${DEMO_TASK:-reach}"
if [ "$task" = reach ]; then
  model=models/sim_reach pipeline=config/sim_pipeline/pipeline.yaml
else
  model=models/sim_manip pipeline=config/sim_pipeline/manip.yaml
fi
if [ ! -f "$model/vjepa2_sim.pt" ]; then
  echo "demo: $model is missing; rebuild it with the pipeline in docs/sim_pipeline.md" >&2
  exit 1
fi
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
exec vjepa-sim demo --pipeline "$pipeline" --task "$task" --model "$model" --seed "${DEMO_SEED:-0}" \
  --episodes "${DEMO_EPISODES:-1}" --out "${DEMO_OUT:-runs/demo}"
