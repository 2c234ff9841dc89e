"""A lab FR3 with franka_ros2 (Jazzy) + V-JEPA 2 perception + planner.

    ros2 launch vjepa2_ros franka_vjepa.launch.py robot_ip:=172.16.0.2 checkpoint:=/models/vjepa2-ac-vitg.pt \
        image_topic:=/camera/color/image_raw

Starts franka_bringup's franka.launch.py (arm, gripper, state broadcasters), spawns the
cartesian_impedance_example_controller (Jazzy; subscribes to ~/equilibrium_pose), then the encoder and planner
nodes with topics resolved under `namespace`. With use_fake_hardware:=true franka_ros2 does not start the robot
state broadcaster, so the planner gets no current_pose: use it only to check the wiring.

The encoder and planner parameters come from config/perception.yaml and config/planner.yaml. ``model_config``,
``backend`` and ``device`` override them only when given a non-empty value (default '': the params files' values,
e.g. ``device: cpu``; pass ``device:=cuda`` on a GPU machine).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

# parameters of both nodes a launch argument of the same name may set ('' keeps the params files' values)
OVERRIDABLE = ("model_config", "backend", "device")


def given_overrides(values: dict[str, str]) -> dict[str, str]:
    """Launch-argument values -> the parameter overrides: only the arguments given a non-empty value."""
    return {name: value for name, value in values.items() if value != ""}


def _vjepa_nodes(context, share):
    ns = LaunchConfiguration("namespace")
    common = {"checkpoint": LaunchConfiguration("checkpoint").perform(context),
              **given_overrides({name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE})}
    encoder = Node(
        package="vjepa_perception", executable="encoder_node", name="encoder_node", namespace=ns, output="screen",
        parameters=[os.path.join(share, "config", "perception.yaml"),
                    dict(common, image_topic=LaunchConfiguration("image_topic").perform(context))],
    )
    planner = Node(
        package="vjepa_planner", executable="planner_node", name="planner_node", namespace=ns, output="screen",
        parameters=[os.path.join(share, "config", "planner.yaml"), dict(
            common, robot="franka_impedance", gripper="franka_action",
            # relative names resolve under the namespace, as franka_ros2's own topics do
            latent_topic="vjepa/latent", encode_service="encoder_node/encode",
            ee_pose_topic="franka_robot_state_broadcaster/current_pose",
            gripper_state_topic="franka_gripper/joint_states",
            target_topic="cartesian_impedance_example_controller/equilibrium_pose",
            gripper_target="franka_gripper")],
    )
    return [encoder, planner]


def generate_launch_description():
    share = get_package_share_directory("vjepa2_ros")
    ns = LaunchConfiguration("namespace")
    args = [
        DeclareLaunchArgument("robot_ip", description="IP of the FR3 control box"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the franka_ros2 nodes"),
        DeclareLaunchArgument("use_fake_hardware", default_value="false",
                              description="franka_ros2 fake hardware (no robot state broadcaster: wiring check only)"),
        DeclareLaunchArgument("checkpoint", description="checkpoint with the encoder and the AC predictor"),
        DeclareLaunchArgument("model_config", default_value="",
                              description="encoder/predictor preset (default: the params files', vit_giant)"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw", description="camera Image topic"),
        DeclareLaunchArgument("backend", default_value="",
                              description="torch | onnxruntime | tensorrt (default: the params files')"),
        DeclareLaunchArgument("device", default_value="",
                              description="inference device: cpu | cuda | cuda:N (default: the params files', cpu)"),
    ]
    franka = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("franka_bringup"), "launch",
                                                            "franka.launch.py"])),
        launch_arguments={"robot_ip": LaunchConfiguration("robot_ip"), "namespace": ns, "load_gripper": "true",
                          "use_fake_hardware": LaunchConfiguration("use_fake_hardware")}.items(),
    )
    controller = Node(
        package="controller_manager", executable="spawner", namespace=ns, output="screen",
        arguments=["cartesian_impedance_example_controller", "--controller-manager-timeout", "30"],
    )
    return LaunchDescription(args + [franka, controller, OpaqueFunction(function=_vjepa_nodes, args=[share])])
