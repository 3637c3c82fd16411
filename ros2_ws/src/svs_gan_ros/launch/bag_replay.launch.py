"""Replay a recorded bag on its own clock -> SVS-GAN node.

    ros2 launch svs_gan_ros bag_replay.launch.py bag:=/path/to/bag checkpoint:=/path/to/ckpt \
        input_topic:=/carla/ego_vehicle/semantic_segmentation_front/image label_encoding:=carla_palette

`ros2 bag play --clock` publishes /clock from the bag's timestamps and the node runs with
use_sim_time, so generated frames carry the recorded stamps. A bag written by `svsgan carla`
already holds /clock: pass clock:=false. Lossless mode by default: every frame, in order (slow the
playback with rate:=0.5 when the generator is slower than real time).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def _player(context, *args, **kwargs):
    cmd = ['ros2', 'bag', 'play', LaunchConfiguration('bag').perform(context),
           '--rate', LaunchConfiguration('rate').perform(context)]
    if LaunchConfiguration('clock').perform(context).lower() == 'true':
        cmd.append('--clock')
    if LaunchConfiguration('loop').perform(context).lower() == 'true':
        cmd.append('--loop')
    return [ExecuteProcess(cmd=cmd, name='bag_player', output='screen')]


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument('bag', description='bag folder or file (.db3 / .mcap)'),
        DeclareLaunchArgument('rate', default_value='1.0', description='playback rate'),
        DeclareLaunchArgument('loop', default_value='false', choices=['true', 'false'],
                              description='replay forever (each restart goes back in time: a new sequence)'),
        DeclareLaunchArgument('clock', default_value='true', choices=['true', 'false'],
                              description='publish /clock from the bag (false if the bag holds /clock)'),
        DeclareLaunchArgument('input_topic', default_value='/carla/ego_vehicle/semantic_segmentation_front/image',
                              description='segmentation topic in the bag'),
        DeclareLaunchArgument('output_topic', default_value='/svsgan/image', description='generated frames'),
        DeclareLaunchArgument('instance_topic', default_value='',
                              description="instance-segmentation topic in the bag, paired with the labels by stamp "
                                          "('': none; /svsgan/hero/instance/image in a bag from `svsgan carla "
                                          "--instance-camera`)"),
        DeclareLaunchArgument('label_encoding', default_value='carla_palette',
                              choices=['ids', 'carla_palette', 'carla_raw'],
                              description="what input pixels mean ('ids' for `svsgan carla` mono8 labels, "
                                          "with label_space:=carla)"),
        DeclareLaunchArgument('label_space', default_value='', description="label space of 'ids' input"),
        DeclareLaunchArgument('checkpoint', description='svsgan checkpoint folder'),
        DeclareLaunchArgument('device', default_value='', description="torch device ('' keeps the params file's)"),
        DeclareLaunchArgument('mode', default_value='lossless', choices=['live', 'lossless'],
                              description='lossless: every frame in order; live: newest frame only'),
        DeclareLaunchArgument('use_sim_time', default_value='true', choices=['true', 'false'],
                              description="time by the bag's /clock (false: the node's wall clock)"),
    ]
    generator = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare('svs_gan_ros'), 'launch', 'generate.launch.py'])),
        launch_arguments=[
            (name, LaunchConfiguration(name))
            for name in ('checkpoint', 'input_topic', 'output_topic', 'instance_topic', 'label_encoding',
                         'label_space', 'device', 'mode', 'use_sim_time')
        ],
    )
    return LaunchDescription(arguments + [generator, OpaqueFunction(function=_player)])
