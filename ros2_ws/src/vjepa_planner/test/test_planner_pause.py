"""~/pause while a plan is being computed wins (issue 14), in a real rclpy graph: the answer comes at once, the
in-flight plan is cancelled and its target never reaches the arm, the hold is at the newest pose, and ~/resume
plans again. The ~/stop counterpart is test_planner_node.py::test_stop_answers_at_once_during_a_slow_plan_and_the_
plan_is_never_sent; the graph, the test arm and the slow-plan settings are that module's (loaded from its file, as
pytest imports test modules by path)."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import numpy as np
from std_srvs.srv import Trigger

from vjepa_interfaces.msg import PlanStatus

_spec = importlib.util.spec_from_file_location("_planner_node_graph", Path(__file__).with_name("test_planner_node.py"))
_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_graph)
Graph, SLOW_PLAN, wait_for, wait_for_planner_pose = (_graph.Graph, _graph.SLOW_PLAN, _graph.wait_for,
                                                     _graph.wait_for_planner_pose)


def test_pause_answers_at_once_during_a_slow_plan_the_plan_is_never_sent_and_resume_plans_again(ros_domain_id):
    """Three pause/resume cycles of one episode, each pausing a plan of many seconds: every pause answers far below
    the plan time (each far below the ~20 s plan, as for ~/stop), the hold goes to the pose the arm was pushed to during
    the plan, the paused plan is cancelled and never sent, and ~/resume starts a new plan in the same episode."""
    g = Graph(ros_domain_id, with_encoder=False, **SLOW_PLAN)
    try:
        pause = g.client(Trigger, "/planner_node/pause")
        resume = g.client(Trigger, "/planner_node/resume")
        g.feed_latents()
        time.sleep(0.5)  # the planner has a pose and a latent: the goal starts a plan at once
        g.goal_pub.publish(g.latent())
        answers = []
        cancelled = None
        for cycle in range(3):
            wait_for(lambda old=cancelled: g.planner.loop.episode == 1
                     and g.planner.loop.state == PlanStatus.STATE_PLANNING
                     and g.planner.plan_in_flight is not None and g.planner.plan_in_flight is not old, 30,
                     f"plan {cycle + 1} of the episode")
            in_flight = g.planner.plan_in_flight
            time.sleep(0.3)
            sent = len(g.arm.targets)
            assert sent == cycle, "a plan finished, or a paused plan was sent"
            g.arm.push([0.01, 0.02, -0.01, 0, 0, 0, 0])  # the arm moves while the plan runs
            pushed = g.arm.state.copy()
            wait_for_planner_pose(g.planner, pushed[:3])
            answer = threading.Event()
            t0 = time.monotonic()
            future = pause.call_async(Trigger.Request())
            future.add_done_callback(lambda _f, answer=answer: answer.set())
            assert answer.wait(10) and future.result().success, f"no answer to ~/pause: {future.result()}"
            answers.append(time.monotonic() - t0)
            # far below the ~20 s plan; the 100 ms target is measured in bench/bench_stop_latency.py (a shared CI
            # runner can stall any process for seconds, so it is not timed here)
            assert answers[-1] < 5.0, f"pause answered after {answers[-1] * 1e3:.0f} ms (the plan takes ~20 s)"
            wait_for(lambda sent=sent: len(g.arm.targets) == sent + 1, 5, "the hold")
            np.testing.assert_allclose(g.arm.targets[-1][:3], pushed[:3], atol=1e-6)  # the newest pose
            wait_for(lambda: g.planner.plan_in_flight is None, 10.0, "the paused plan to be cancelled")
            assert g.planner.loop.state == PlanStatus.STATE_PAUSED and g.planner.loop.episode == 1
            time.sleep(0.5)
            assert len(g.arm.targets) == sent + 1, "the plan made before the pause was sent after it"
            future = resume.call_async(Trigger.Request())
            wait_for(future.done, 10, "the answer to ~/resume")
            assert future.result().success, future.result().message
            cancelled = in_flight
        # the last resume planned again (a new plan is in flight); nothing was ever executed from a paused plan
        wait_for(lambda: g.planner.plan_in_flight is not None and g.planner.plan_in_flight is not cancelled, 30,
                 "a plan after the last resume")
        assert len(g.arm.targets) == 3 and not g.executing()
        assert [s.state for s in g.statuses].count(PlanStatus.STATE_PAUSED) >= 3
        assert all(s.episode == 1 for s in g.statuses if s.state == PlanStatus.STATE_PAUSED)
    finally:
        g.close()
