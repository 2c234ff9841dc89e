"""planner_node's ~/reach_goals action (vjepa_interfaces/action/ReachGoals) in a real rclpy graph (Fast DDS): goal
sequences with sub-goal switching and feedback, bad goals refused at acceptance, preemption, cancel -> hold at the
newest pose, and the gripper commanded (sim_topic adapter) when the plan closes or opens the hand."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from vjepa_core.imgmsg import rgb_to_image_fields
from vjepa_core.loading import load_world_model
from vjepa_interfaces.action import ReachGoals
from vjepa_interfaces.msg import GripperCommand, PlanStatus

_spec = importlib.util.spec_from_file_location("planner_node_graph", Path(__file__).with_name("test_planner_node.py"))
graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(graph)

ACTION = "/planner_node/reach_goals"
OUTCOME = ReachGoals.Result


def feed(g: graph.Graph, grid: np.ndarray, stop: threading.Event, period: float = 0.05) -> None:
    """Publish fresh camera latents with fixed tokens (the scene does not change) until ``stop``."""
    def run():
        while not stop.is_set():
            g.latent_pub.publish(g.latent(grid=grid))
            time.sleep(period)
    threading.Thread(target=run, daemon=True).start()


class Client:
    """A ReachGoals action client on the test's probe node; feedback kept per goal."""

    def __init__(self, g: graph.Graph):
        self.client = ActionClient(g.probe, ReachGoals, ACTION)
        assert self.client.wait_for_server(timeout_sec=10), "~/reach_goals not available"
        self.feedback: dict[bytes, list[PlanStatus]] = {}

    def send(self, goal: ReachGoals.Goal, timeout: float = 60.0):
        fb: list[PlanStatus] = []
        future = self.client.send_goal_async(goal, feedback_callback=lambda m: fb.append(m.feedback.status))
        graph.wait_for(future.done, timeout, "the goal response")
        handle = future.result()
        self.feedback[bytes(handle.goal_id.uuid)] = fb
        return handle

    @staticmethod
    def result(handle, timeout: float = 90.0):
        future = handle.get_result_async()
        graph.wait_for(future.done, timeout, "the result")
        return future.result()

    def feedback_of(self, handle) -> list[PlanStatus]:
        return self.feedback[bytes(handle.goal_id.uuid)]


def latent_goals(g: graph.Graph, grids, max_steps=(), thresholds=(), task="") -> ReachGoals.Goal:
    return ReachGoals.Goal(latents=[g.latent(grid=grid) for grid in grids], max_steps=list(max_steps),
                           energy_thresholds=list(thresholds), task=task)


def refused(g: graph.Graph, client: Client, goal: ReachGoals.Goal, why: str) -> None:
    """The goal is rejected at acceptance and the reason is said on ~/status."""
    handle = client.send(goal)
    assert not handle.accepted, f"a bad goal was accepted ({why})"
    graph.wait_for(lambda: any(s.message.startswith("reach_goals refused: ") and why in s.message
                               for s in g.statuses), 10, f"the refusal {why!r} on ~/status")


def test_image_goals_run_in_order_with_feedback_and_bad_goals_are_refused(ros_domain_id):
    """Images are encoded through the encoder node before acceptance; each goal gets its own budget; every status
    of the episode is feedback (goal index, step, state, energies, action, planning time); the last budget spent
    ends the goal as ABORTED with per-goal results."""
    g = graph.Graph(ros_domain_id)
    try:
        client = Client(g)
        one = g.latent()
        short = g.latent()
        short.data = short.data[:-1]
        yuv = Image(height=8, width=8, encoding="yuv422", step=16, data=bytes(128))
        for goal, why in [
            (ReachGoals.Goal(), "no goals: give images, compressed_images or latents"),
            (ReachGoals.Goal(images=[Image(**rgb_to_image_fields(graph.render(graph.HOME)))], latents=[one]),
             "give one kind of goals, got images and latents"),
            (ReachGoals.Goal(latents=[one], max_steps=[-1]), "goal 0: max_steps -1 is negative"),
            (ReachGoals.Goal(latents=[one, one], max_steps=[3]), "max_steps has 1 values for 2 goals"),
            (ReachGoals.Goal(latents=[one], energy_thresholds=[float("nan")]), "goal 0: energy threshold nan"),
            (ReachGoals.Goal(latents=[one, g.latent(model="vit_giant@0123456789ab")]),
             "goal 1: latent from model 'vit_giant@0123456789ab'"),
            (ReachGoals.Goal(latents=[short]), "goal 0: Latent data has 1535 values"),
            (ReachGoals.Goal(images=[yuv]), "goal 0: goal image refused"),
        ]:
            refused(g, client, goal, why)
        assert not g.arm.targets and all(s.episode == 0 for s in g.statuses)

        images = [Image(**rgb_to_image_fields(graph.render(graph.HOME + d)))
                  for d in ([0, 0.1, -0.1, 0, 0, 0, 0], [0, -0.1, 0.0, 0, 0, 0, 0])]
        handle = client.send(ReachGoals.Goal(images=images, max_steps=[2, 1], energy_thresholds=[-1.0, -1.0],
                                             task="two images"))
        assert handle.accepted
        res = client.result(handle)
        assert res.status == GoalStatus.STATUS_ABORTED
        r = res.result
        assert (r.success, r.state, r.episode) == (False, PlanStatus.STATE_FAILED, 1)
        assert r.message.startswith("goal 2/2: step budget of 1 exhausted"), r.message
        assert list(r.outcomes) == [OUTCOME.OUTCOME_BUDGET_SPENT] * 2 and list(r.steps) == [2, 1]
        assert np.all(np.isfinite(r.final_goal_energies)) and len(g.arm.targets) == 3
        time.sleep(0.3)
        feedback = client.feedback_of(handle)
        executing = [s for s in feedback if s.state == PlanStatus.STATE_EXECUTING]
        assert [(s.goal_index, s.goal_step, s.step) for s in executing] == [(0, 0, 0), (0, 1, 1), (1, 0, 2)]
        assert all(s.num_goals == 2 and s.episode == 1 for s in feedback)
        for s in executing:
            assert np.isfinite(s.energy) and np.isfinite(s.goal_energy) and s.planning_time > 0
            assert np.any(np.asarray(s.action) != 0)
        assert any("goal 1/2: step budget of 2 exhausted" in s.message and "next: goal 2/2" in s.message
                   for s in feedback)
        assert feedback[-1].state == PlanStatus.STATE_FAILED
        on_status = [(s.step, s.state, s.message) for s in g.statuses if s.episode == 1]
        assert [(s.step, s.state, s.message) for s in feedback] == on_status  # every status is feedback
    finally:
        g.close()


@pytest.fixture(scope="module")
def world_model():
    model = load_world_model(graph.FIXTURE / "checkpoint.pt", graph.FIXTURE / "config.json", encoder=False,
                             predictor=True, threads=1)
    return model.world_model


def predicted(world_model, grid: np.ndarray, state: np.ndarray, dgripper: float) -> np.ndarray:
    """The tiny model's prediction of the scene after the action (0, 0, 0, 0, 0, 0, dgripper) from ``state``: a goal
    that only that gripper action reaches."""
    action = torch.zeros(1, 1, 7)
    action[0, 0, 6] = dgripper
    ctx = torch.from_numpy(grid.astype(np.float32).reshape(1, 16, 96))
    st = torch.from_numpy(np.asarray(state, np.float32).reshape(1, 7))
    with torch.no_grad():
        return world_model.unroll(ctx, st, action)[0].numpy().reshape(-1)


def test_thresholds_switch_goals_preemption_and_the_gripper_commanded(ros_domain_id, world_model):
    """Latent goals: a reached threshold moves on without a command and the last goal reached SUCCEEDS; a new goal
    (action or goal latent) preempts the running one, which is aborted; a plan that closes the hand sends a grasp
    on the gripper topic, one that keeps a hand closed on a cup sends no 'open', and one that opens sends it."""
    g = graph.Graph(ros_domain_id, with_encoder=False)
    stop = threading.Event()
    grippers: list[GripperCommand] = []
    g.probe.create_subscription(GripperCommand, "/vjepa_sim/gripper_command", grippers.append, 10)
    try:
        assert g.planner.planner.cem.config.momentum_mean_gripper == 0.15  # the reference's gripper momentum
        client = Client(g)
        scene = np.random.default_rng(7).normal(size=1536)
        far = np.random.default_rng(8).normal(size=1536)
        feed(g, scene, stop)
        graph.wait_for(lambda: g.planner._snapshot()[1] is not None and g.planner._pose_obs() is not None, 10,
                       "the planner to hear the camera and the arm")

        # the gripper (first: no command has been sent yet): a plan that closes the open hand sends a grasp
        state = g.planner._pose_obs().state
        assert state[6] == 0.0
        handle = client.send(latent_goals(g, [predicted(world_model, scene, state, 0.75)], max_steps=[1],
                                          thresholds=[-1.0]))
        client.result(handle)
        step = next(s for s in client.feedback_of(handle) if s.state == PlanStatus.STATE_EXECUTING)
        assert step.action[6] > 0.5, step.action
        graph.wait_for(lambda: grippers and grippers[-1].grasp, 5, "the grasp command")
        assert grippers[-1].width == 0.0 and grippers[-1].force > 0
        # a new episode forgets the last command: the hand was opened behind the planner's back (a sim reset), and
        # the next episode's grasp must go out although the last command sent was a grasp too
        g.arm.gripper = (graph.FINGERS, [0.04, 0.04])
        graph.wait_for(lambda: g.planner._pose_obs().state[6] == 0.0, 5, "the fingers to open again")
        sent = len(grippers)
        handle = client.send(latent_goals(g, [predicted(world_model, scene, g.planner._pose_obs().state, 0.75)],
                                          max_steps=[1], thresholds=[-1.0]))
        client.result(handle)
        graph.wait_for(lambda: len(grippers) > sent and grippers[-1].grasp, 5, "the new episode's grasp command")

        # fingers closed on a 5 cm cup (closedness 0.375): steps that keep the hand as it is send no 'open'
        g.arm.gripper = (graph.FINGERS, [0.025, 0.025])
        graph.wait_for(lambda: abs(g.planner._pose_obs().state[6] - 0.375) < 1e-6, 5, "the fingers on the cup")
        state = g.planner._pose_obs().state
        sent = len(grippers)
        handle = client.send(latent_goals(g, [predicted(world_model, scene, state, 0.0)], max_steps=[3],
                                          thresholds=[-1.0]))
        client.result(handle)
        steps = [s for s in client.feedback_of(handle) if s.state == PlanStatus.STATE_EXECUTING]
        assert len(steps) == 3 and all(abs(s.ee_state[6] - 0.375) < 1e-6 for s in steps)
        time.sleep(0.3)
        assert all(m.grasp for m in grippers[sent:]), "a hand holding an object was told to open"
        # ... and a plan that opens it sends 'open'
        handle = client.send(latent_goals(g, [predicted(world_model, scene, state, -0.75)], max_steps=[1],
                                          thresholds=[-1.0]))
        client.result(handle)
        graph.wait_for(lambda: grippers and not grippers[-1].grasp, 5, "the open command")
        assert grippers[-1].width == pytest.approx(0.08)
        g.arm.gripper = (graph.FINGERS, [0.04, 0.04])

        sent = len(g.arm.targets)
        handle = client.send(latent_goals(g, [scene, far, scene], max_steps=[5, 2, 5],
                                          thresholds=[1e-3, -1.0, 1e-3], task="there and back"))
        res = client.result(handle)
        assert res.status == GoalStatus.STATUS_SUCCEEDED, res.result.message
        r = res.result
        assert r.success and r.state == PlanStatus.STATE_SUCCEEDED
        assert list(r.outcomes) == [OUTCOME.OUTCOME_REACHED, OUTCOME.OUTCOME_BUDGET_SPENT, OUTCOME.OUTCOME_REACHED]
        assert list(r.steps) == [0, 2, 0] and r.final_goal_energies[0] == 0.0 and r.final_goal_energies[2] == 0.0
        assert len(g.arm.targets) == sent + 2
        indices = [s.goal_index for s in client.feedback_of(handle)]
        assert indices == sorted(indices) and set(indices) == {1, 2}  # goal 0 was reached before any status

        first = client.send(latent_goals(g, [far], max_steps=[50], thresholds=[-1.0]))
        graph.wait_for(lambda: any(s.state == PlanStatus.STATE_EXECUTING for s in client.feedback_of(first)), 30,
                       "a step of the first goal")
        second = client.send(latent_goals(g, [far], max_steps=[50], thresholds=[-1.0]))
        res = client.result(first)
        assert res.status == GoalStatus.STATUS_ABORTED
        assert res.result.message == f"preempted by a new goal (episode {res.result.episode + 1})"
        assert list(res.result.outcomes) == [OUTCOME.OUTCOME_STOPPED] and res.result.steps[0] >= 1
        graph.wait_for(lambda: any(s.state == PlanStatus.STATE_EXECUTING for s in client.feedback_of(second)), 30,
                       "a step of the second goal")
        g.goal_pub.publish(g.latent(grid=far))  # the one-goal shortcut preempts too
        res = client.result(second)
        assert res.status == GoalStatus.STATUS_ABORTED and res.result.message.startswith("preempted by a new goal")
        third = client.send(latent_goals(g, [far], max_steps=[50], thresholds=[-1.0]))
        graph.wait_for(lambda: any(s.state == PlanStatus.STATE_EXECUTING for s in client.feedback_of(third)), 30,
                       "a step of the third goal")
        assert g.call(Trigger, "/planner_node/stop", Trigger.Request()).success  # ~/stop ends the goal too
        res = client.result(third)
        assert res.status == GoalStatus.STATUS_ABORTED and res.result.state == PlanStatus.STATE_STOPPED
        assert res.result.message == "stop requested" and list(res.result.outcomes) == [OUTCOME.OUTCOME_STOPPED]
    finally:
        stop.set()
        g.close()


def test_gripper_modes_hold_plans_the_arm_only_and_bad_modes_are_refused(ros_domain_id, world_model):
    """ReachGoals.gripper_modes (issue 15: carrying a held object): toward a goal that only closing the hand
    reaches, GRIPPER_PLAN closes it (a grasp command), GRIPPER_HOLD plans the arm only (gripper action 0 at every
    step, no grasp sent); a mode list of the wrong length, an unknown mode and PLAN on a node without a gripper are
    refused at acceptance."""
    g = graph.Graph(ros_domain_id, with_encoder=False)
    stop = threading.Event()
    grippers: list[GripperCommand] = []
    g.probe.create_subscription(GripperCommand, "/vjepa_sim/gripper_command", grippers.append, 10)
    try:
        client = Client(g)
        one = g.latent()
        for goal, why in [
            (ReachGoals.Goal(latents=[one, one], gripper_modes=[2]), "gripper_modes has 1 values for 2 goals"),
            (ReachGoals.Goal(latents=[one], gripper_modes=[7]), "goal 0: gripper mode 7 is none of"),
        ]:
            refused(g, client, goal, why)
        g.planner.params["gripper"] = "none"  # as if started without a gripper adapter
        try:
            refused(g, client, ReachGoals.Goal(latents=[one], gripper_modes=[ReachGoals.Goal.GRIPPER_PLAN]),
                    "goal 0: gripper mode PLAN, but this node has no gripper")
        finally:
            g.planner.params["gripper"] = graph.PLANNER["gripper"]
        scene = np.random.default_rng(7).normal(size=1536)
        feed(g, scene, stop)
        graph.wait_for(lambda: g.planner._snapshot()[1] is not None and g.planner._pose_obs() is not None, 10,
                       "the planner to hear the camera and the arm")
        state = g.planner._pose_obs().state
        closing = predicted(world_model, scene, state, 0.75)  # only closing the hand reaches it

        hold = latent_goals(g, [closing], max_steps=[2], thresholds=[-1.0])
        hold.gripper_modes = [ReachGoals.Goal.GRIPPER_HOLD]
        handle = client.send(hold)
        client.result(handle)
        steps = [s for s in client.feedback_of(handle) if s.state == PlanStatus.STATE_EXECUTING]
        assert len(steps) == 2 and all(s.action[6] == 0.0 for s in steps), [list(s.action) for s in steps]
        time.sleep(0.3)
        assert not any(m.grasp for m in grippers), "a held (open) gripper was closed"

        plan = latent_goals(g, [closing], max_steps=[1], thresholds=[-1.0])
        plan.gripper_modes = [ReachGoals.Goal.GRIPPER_PLAN]
        handle = client.send(plan)
        client.result(handle)
        step = next(s for s in client.feedback_of(handle) if s.state == PlanStatus.STATE_EXECUTING)
        assert step.action[6] > 0.5, step.action
        graph.wait_for(lambda: grippers and grippers[-1].grasp, 5, "the grasp command")
    finally:
        stop.set()
        g.close()


def test_cancel_mid_plan_answers_at_once_and_holds_at_the_newest_pose(ros_domain_id):
    """Cancel = ~/stop: the cancel is answered while a multi-second plan runs, the hold goes to the pose the arm
    reported last (it was pushed during the plan), the plan is never sent, and the result is CANCELED."""
    g = graph.Graph(ros_domain_id, with_encoder=False, **graph.SLOW_PLAN)
    stop = threading.Event()
    try:
        client = Client(g)
        feed(g, np.random.default_rng(1).normal(size=1536), stop)
        graph.wait_for(lambda: g.planner._snapshot()[1] is not None and g.planner._pose_obs() is not None, 10,
                       "the planner to hear the camera and the arm")
        handle = client.send(latent_goals(g, [np.random.default_rng(2).normal(size=1536)] * 2,
                                          max_steps=[20, 20]))
        assert handle.accepted
        graph.wait_for(lambda: g.planner.plan_in_flight is not None, 30, "a plan in progress")
        time.sleep(0.3)
        g.arm.push([0.02, -0.01, 0.0, 0, 0, 0, 0])
        pushed = g.arm.state.copy()
        graph.wait_for_planner_pose(g.planner, pushed[:3])
        assert not g.arm.targets, "the plan finished too early for this test"
        t0 = time.monotonic()
        future = handle.cancel_goal_async()
        graph.wait_for(future.done, 10, "the cancel response")
        answered = time.monotonic() - t0
        assert future.result().goals_canceling, "the cancel was refused"
        assert answered < 0.5, f"cancel answered after {answered * 1e3:.0f} ms (the plan takes seconds)"
        graph.wait_for(lambda: len(g.arm.targets) == 1, 5, "the hold")
        np.testing.assert_allclose(g.arm.targets[0][:3], pushed[:3], atol=1e-6)
        res = client.result(handle)
        assert res.status == GoalStatus.STATUS_CANCELED
        r = res.result
        assert (r.state, r.message, r.success) == (PlanStatus.STATE_STOPPED, "cancelled by the action client", False)
        assert list(r.outcomes) == [OUTCOME.OUTCOME_STOPPED, OUTCOME.OUTCOME_NOT_STARTED]
        graph.wait_for(lambda: g.planner.plan_in_flight is None, 2, "the plan to be cancelled")
        time.sleep(0.5)
        assert len(g.arm.targets) == 1, "a plan made before the cancel was sent after it"
        assert g.statuses[-1].state == PlanStatus.STATE_STOPPED
    finally:
        stop.set()
        g.close()
