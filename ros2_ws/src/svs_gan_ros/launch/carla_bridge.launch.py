"""CARLA through carla-ros-bridge -> SVS-GAN node for the ego camera.

    ros2 launch svs_gan_ros carla_bridge.launch.py checkpoint:=/path/to/ckpt

Starts the bridge (carla_ros_bridge's own launch file: synchronous mode, /clock from the simulator),
spawns the ego vehicle with the cameras of this package's config/carla_ros_bridge_ego.json
(carla_spawn_objects) and runs the generator on /carla/ego_vehicle/semantic_segmentation_front/image.
The bridge publishes that camera in CityScapesPalette colours (bgra8), hence label_encoding
carla_palette, which reads both CARLA tag numberings. The CARLA server itself runs outside this launch (see docs/carla.md).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

def generate_launch_description():
    arguments = [
        DeclareLaunchArgument('host', default_value='localhost', description='CARLA server host'),
        DeclareLaunchArgument('port', default_value='2000', description='CARLA server RPC port'),
        DeclareLaunchArgument('timeout', default_value='10', description='seconds to wait for the server'),
        DeclareLaunchArgument('town', default_value='Town01', description='map the bridge loads'),
        DeclareLaunchArgument('synchronous_mode', default_value='True', choices=['True', 'False'],
                              description='the bridge ticks the world with a fixed step'),
        DeclareLaunchArgument('fixed_delta_seconds', default_value='0.05', description='simulation step'),
        DeclareLaunchArgument('passive', default_value='False', choices=['True', 'False'],
                              description='another client ticks the world'),
        DeclareLaunchArgument('spawn_ego', default_value='true', choices=['true', 'false'],
                              description='spawn the ego vehicle and cameras with carla_spawn_objects'),
        DeclareLaunchArgument('objects_definition_file',
                              default_value=os.path.join(get_package_share_directory('svs_gan_ros'), 'config',
                                                           'carla_ros_bridge_ego.json'),
                              description='carla_spawn_objects file: ego vehicle and its cameras'),
        DeclareLaunchArgument('input_topic', default_value='/carla/ego_vehicle/semantic_segmentation_front/image',
                              description='semantic camera topic of the bridge'),
        DeclareLaunchArgument('output_topic', default_value='/svsgan/ego_vehicle/image',
                              description='generated frames'),
        DeclareLaunchArgument('instance_topic', default_value='',
                              description="instance-segmentation topic paired with the labels by stamp ('': none; "
                                          'the bridge releases up to 0.9.12 publish no instance camera, docs/carla.md)'),
        DeclareLaunchArgument('checkpoint', description='svsgan checkpoint folder'),
        DeclareLaunchArgument('device', default_value='', description="torch device ('' keeps the params file's)"),
        DeclareLaunchArgument('precision', default_value='', choices=['', 'fp32', 'fp16', 'bf16'],
                              description='inference precision'),
        DeclareLaunchArgument('mode', default_value='live', choices=['live', 'lossless'],
                              description='live: newest frame (bounded latency); lossless: every frame'),
        DeclareLaunchArgument('label_encoding', default_value='carla_palette',
                              choices=['ids', 'carla_palette', 'carla_raw'],
                              description="what input pixels mean ('carla_palette': the bridge's CityScapesPalette colours)"),
        DeclareLaunchArgument('use_sim_time', default_value='true', choices=['true', 'false'],
                              description="stamp and time by the simulator's /clock"),
    ]
    bridge = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare('carla_ros_bridge'), 'carla_ros_bridge.launch.py'])),
        launch_arguments={
            name: LaunchConfiguration(name)
            for name in ('host', 'port', 'timeout', 'town', 'synchronous_mode', 'fixed_delta_seconds', 'passive')
        }.items(),
    )
    ego = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare('carla_spawn_objects'), 'carla_example_ego_vehicle.launch.py'])),
        launch_arguments={'objects_definition_file': LaunchConfiguration('objects_definition_file')}.items(),
        condition=IfCondition(LaunchConfiguration('spawn_ego')),
    )
    generator = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare('svs_gan_ros'), 'launch', 'generate.launch.py'])),
        launch_arguments={
            'checkpoint': LaunchConfiguration('checkpoint'),
            'input_topic': LaunchConfiguration('input_topic'),
            'output_topic': LaunchConfiguration('output_topic'),
            'instance_topic': LaunchConfiguration('instance_topic'),
            'label_encoding': LaunchConfiguration('label_encoding'),
            'device': LaunchConfiguration('device'),
            'precision': LaunchConfiguration('precision'),
            'mode': LaunchConfiguration('mode'),
            'use_sim_time': LaunchConfiguration('use_sim_time'),
        }.items(),
    )
    return LaunchDescription(arguments + [bridge, ego, generator])
