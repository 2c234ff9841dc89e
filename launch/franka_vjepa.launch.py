"""A lab FR3 with franka_ros2 + V-JEPA 2 perception + planner (docs/lab.md).

    ros2 launch vjepa2_ros franka_vjepa.launch.py robot_ip:=172.16.0.2 checkpoint:=/models/vjepa2-ac-vitg.pt \
        image_topic:=/camera/color/image_raw device:=cuda

``bringup:=true`` (default, franka_ros2 Jazzy) includes franka_bringup's franka.launch.py (arm, gripper, state
broadcasters) with ``robot_type``, ``robot_ip``, ``namespace``, ``load_gripper``, ``use_fake_hardware`` and spawns the
cartesian_impedance_example_controller (subscribes to ~/equilibrium_pose), then starts the encoder and planner
nodes. ``bringup:=false`` starts only the encoder and planner nodes, for labs that run franka_ros2 (and their
controller) themselves, e.g. on Humble with ``robot:=crisp target_topic:=...``. Our topic names are relative, so
with ``namespace:=NS`` they resolve under /NS as franka_ros2's own topics do (/NS/vjepa/latent,
/NS/franka_robot_state_broadcaster/current_pose, ...). With use_fake_hardware:=true franka_ros2 does not start the
robot state broadcaster, so the planner gets no current_pose: use it only to check the wiring.

The encoder and planner parameters come from config/perception.yaml and config/planner.yaml (or your copies:
``perception_params:=``, ``planner_params:=``; the franka_ros2 wiring above is set over them). ``model_config``,
``backend``, ``device`` and ``image_topic`` override them only when given a non-empty value (default '': the params
files' values, e.g. ``device: cpu``; pass ``device:=cuda`` on a GPU machine). ``convention:=droid`` is the released
model's DROID preset in one switch (vjepa_planner.conventions.DROID_PRESET: planner ``ee_convention: droid`` and
``min_step_duration_s: 1.0``, encoder ``crop: droid``), set over the params files; '' (default) keeps theirs.
Ctrl-C gives each node ``sigterm_timeout`` (15 s) to command its hold and exit before launch escalates to SIGTERM.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from vjepa_planner.conventions import DROID_PRESET

# parameters of both nodes a launch argument of the same name may set ('' keeps the params files' values)
OVERRIDABLE = ("model_config", "backend", "device")
# franka_bringup franka.launch.py arguments this file passes on (same names; see bringup_arguments)
FRANKA_ARGUMENTS = ("robot_type", "robot_ip", "namespace", "load_gripper", "use_fake_hardware")
CONTROLLER = "cartesian_impedance_example_controller"


def given_overrides(values: dict[str, str]) -> dict[str, str]:
    """Launch-argument values -> the parameter overrides: only the arguments given a non-empty value."""
    return {name: value for name, value in values.items() if value != ""}


def convention_overrides(convention: str) -> tuple[dict, dict]:
    """The ``convention`` launch argument -> (encoder_node, planner_node) parameter overrides: '' none (the params
    files' values), ``droid`` the released model's preset (DROID_PRESET)."""
    if convention == "":
        return {}, {}
    if convention == "droid":
        return ({"crop": DROID_PRESET.crop},
                {"ee_convention": DROID_PRESET.ee_convention, "min_step_duration_s": DROID_PRESET.step_duration_s})
    raise ValueError(f"convention must be '' (the params files' values) or 'droid', got {convention!r}")


def is_true(value: str) -> bool:
    """A launch boolean as launch's IfCondition reads it ('true'/'1' and 'false'/'0', any case)."""
    text = value.strip().lower()
    if text not in ("true", "1", "false", "0"):
        raise ValueError(f"expected a boolean (true/false), got {value!r}")
    return text in ("true", "1")


def bringup_arguments(values: dict[str, str]) -> dict[str, str]:
    """Our launch-argument values -> franka.launch.py's arguments. franka_ros2 >= 2.2 defaults robot_type to ''
    (its URDF then fails), so it is always passed; the robot state broadcaster is requested explicitly because the
    planner needs its current_pose."""
    if not values["robot_ip"] and not is_true(values["use_fake_hardware"]):
        raise ValueError("robot_ip:=<FR3 control box IP> is required with bringup:=true (or use_fake_hardware:=true; "
                         "bringup:=false when franka_ros2 runs separately)")
    if not values["robot_type"]:
        raise ValueError("robot_type must not be empty (fr3, fp3, fer, ...): franka_bringup needs it for the URDF")
    args = {name: values[name] for name in FRANKA_ARGUMENTS}
    args["load_gripper"] = str(is_true(values["load_gripper"])).lower()
    args["use_fake_hardware"] = str(is_true(values["use_fake_hardware"])).lower()
    args["load_franka_robot_state_broadcaster"] = "true"
    return args


def _franka_bringup(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in ("bringup", *FRANKA_ARGUMENTS)}
    if not is_true(values["bringup"]):
        return []
    franka = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("franka_bringup"), "launch",
                                                            "franka.launch.py"])),
        launch_arguments=bringup_arguments(values).items(),
    )
    controller = Node(
        package="controller_manager", executable="spawner", namespace=values["namespace"], output="screen",
        arguments=[CONTROLLER, "--controller-manager-timeout", "30"],
    )
    # scoped: franka's own launch configurations (joint_state_rate, controllers_yaml, ...) stay inside the group
    return [GroupAction([franka], scoped=True), controller]


def _vjepa_nodes(context):
    ns = LaunchConfiguration("namespace").perform(context)
    common = {"checkpoint": LaunchConfiguration("checkpoint").perform(context),
              **given_overrides({name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE})}
    gripper = LaunchConfiguration("gripper").perform(context)
    if not gripper:
        gripper = "franka_action" if is_true(LaunchConfiguration("load_gripper").perform(context)) else "none"
    encoder_preset, planner_preset = convention_overrides(LaunchConfiguration("convention").perform(context))
    encoder = Node(
        package="vjepa_perception", executable="encoder_node", name="encoder_node", namespace=ns, output="screen",
        parameters=[LaunchConfiguration("perception_params").perform(context), dict(
            common, **encoder_preset, latent_topic="vjepa/latent",  # relative: where the planner listens
            **given_overrides({"image_topic": LaunchConfiguration("image_topic").perform(context)}))],
    )
    planner = Node(
        package="vjepa_planner", executable="planner_node", name="planner_node", namespace=ns, output="screen",
        parameters=[LaunchConfiguration("planner_params").perform(context), dict(
            common, **planner_preset, robot=LaunchConfiguration("robot").perform(context), gripper=gripper,
            # relative names resolve under the namespace, as franka_ros2's own topics do
            latent_topic="vjepa/latent", goal_latent_topic="vjepa/goal_latent", encode_service="encoder_node/encode",
            ee_pose_topic=LaunchConfiguration("ee_pose_topic").perform(context),
            gripper_state_topic=LaunchConfiguration("gripper_state_topic").perform(context),
            target_topic=LaunchConfiguration("target_topic").perform(context),
            gripper_target=LaunchConfiguration("gripper_target").perform(context),
            robot_state_topic=LaunchConfiguration("robot_state_topic").perform(context),
            error_recovery_action="action_server/error_recovery")],
    )
    return [encoder, planner]


def generate_launch_description():
    share = get_package_share_directory("vjepa2_ros")
    args = [
        DeclareLaunchArgument("bringup", default_value="true",
                              description="true: include franka_bringup franka.launch.py and spawn the Cartesian "
                                          "impedance controller (Jazzy); false: only the encoder and planner nodes"),
        DeclareLaunchArgument("robot_type", default_value="fr3",
                              description="franka_ros2 robot_type (fr3, fp3, fer; franka_ros2 >= 2.2 needs it)"),
        DeclareLaunchArgument("robot_ip", default_value="",
                              description="IP of the FR3 control box (required with bringup:=true on real hardware)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the franka_ros2 nodes; ours and our topics resolve under it"),
        DeclareLaunchArgument("load_gripper", default_value="true",
                              description="franka_ros2 starts franka_gripper; false: the planner commands no gripper"),
        DeclareLaunchArgument("use_fake_hardware", default_value="false",
                              description="franka_ros2 fake hardware (no robot state broadcaster: wiring check only)"),
        DeclareLaunchArgument("checkpoint", description="checkpoint with the encoder and the AC predictor"),
        DeclareLaunchArgument("perception_params", default_value=os.path.join(share, "config", "perception.yaml"),
                              description="encoder_node params file (a copy of config/perception.yaml: e.g. crop)"),
        DeclareLaunchArgument("planner_params", default_value=os.path.join(share, "config", "planner.yaml"),
                              description="planner_node params file (a copy of config/planner.yaml: e.g. "
                                          "ee_convention, workspace)"),
        DeclareLaunchArgument("convention", default_value="",
                              description="'' = the params files' conventions | droid = the released model's DROID "
                                          "preset: planner ee_convention droid, min_step_duration_s 1.0; encoder "
                                          "crop droid"),
        DeclareLaunchArgument("model_config", default_value="",
                              description="encoder/predictor preset (default: the params files', vit_giant)"),
        DeclareLaunchArgument("image_topic", default_value="",
                              description="camera sensor_msgs/Image topic (default: perception.yaml, "
                                          "/camera/image_raw)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="torch | onnxruntime | tensorrt (default: the params files')"),
        DeclareLaunchArgument("device", default_value="",
                              description="inference device: cpu | cuda | cuda:N (default: the params files', cpu)"),
        DeclareLaunchArgument("robot", default_value="franka_impedance",
                              description="planner robot adapter: franka_impedance (Jazzy) | crisp (e.g. Humble)"),
        DeclareLaunchArgument("target_topic", default_value=f"{CONTROLLER}/equilibrium_pose",
                              description="PoseStamped target of the Cartesian controller (relative: under namespace)"),
        DeclareLaunchArgument("ee_pose_topic", default_value="franka_robot_state_broadcaster/current_pose",
                              description="PoseStamped end-effector pose (relative: under namespace)"),
        DeclareLaunchArgument("gripper_state_topic", default_value="franka_gripper/joint_states",
                              description="gripper sensor_msgs/JointState (relative: under namespace)"),
        DeclareLaunchArgument("robot_state_topic", default_value="franka_robot_state_broadcaster/robot_state",
                              description="franka_msgs/FrankaRobotState watched for robot errors (relative: under "
                                          "namespace; '' = not watched)"),
        DeclareLaunchArgument("gripper", default_value="",
                              description="planner gripper adapter: franka_action | control_msgs | none "
                                          "(default: franka_action, none with load_gripper:=false)"),
        DeclareLaunchArgument("gripper_target", default_value="franka_gripper",
                              description="gripper action namespace or action name (relative: under namespace)"),
        DeclareLaunchArgument("sigterm_timeout", default_value="15",
                              description="seconds each node gets to exit after Ctrl-C before SIGTERM (launch's own "
                                          "default, 5, is too short for model nodes on a busy machine)"),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_franka_bringup), OpaqueFunction(function=_vjepa_nodes)])
