"""CARLA 0.9.16's native ROS 2 topics -> SVS-GAN node. No bridge.

    ros2 launch svs_gan_ros carla_native.launch.py checkpoint:=/path/to/ckpt

The server must run with --ros2. `svsgan carla --output none --native-ros` (ExecuteProcess) uses or
spawns the 'hero' vehicle, attaches a semantic camera with ros_name 'semantic_segmentation', enables
CARLA's own publisher on it and ticks the world synchronously; CARLA then publishes
/carla/hero/semantic_segmentation/image (bgra8, tag in the red channel: label_encoding carla_raw)
and /clock. On exit that process restores the world's settings and removes what it spawned.
instance_topic:=/carla/hero/instance_segmentation/image also attaches CARLA's instance camera
(ros_name instance_segmentation) and pairs its images with the labels by stamp.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument('host', default_value='127.0.0.1', description='CARLA server host'),
        DeclareLaunchArgument('port', default_value='2000', description='CARLA server RPC port'),
        DeclareLaunchArgument('timeout', default_value='10', description='seconds before the server counts as lost'),
        DeclareLaunchArgument('drive', default_value='true', choices=['true', 'false'],
                              description='run `svsgan carla --native-ros` to set up the camera and tick the world '
                                          '(false: another client does both)'),
        DeclareLaunchArgument('fixed_delta_seconds', default_value='0.05', description='simulation step'),
        DeclareLaunchArgument('width', default_value='1024', description='camera width'),
        DeclareLaunchArgument('height', default_value='512', description='camera height'),
        DeclareLaunchArgument('fov', default_value='90', description='camera horizontal field of view (degrees)'),
        DeclareLaunchArgument('input_topic', default_value='/carla/hero/semantic_segmentation/image',
                              description="CARLA's native semantic camera topic"),
        DeclareLaunchArgument('output_topic', default_value='/svsgan/hero/image', description='generated frames'),
        DeclareLaunchArgument('instance_topic', default_value='',
                              description="CARLA's native instance-segmentation topic, paired with the labels by stamp: "
                                          '/carla/hero/instance_segmentation/image makes the driver add the instance '
                                          "camera (--instance-camera); '' (default): no instance camera"),
        DeclareLaunchArgument('checkpoint', description='svsgan checkpoint folder'),
        DeclareLaunchArgument('device', default_value='', description="torch device ('' keeps the params file's)"),
        DeclareLaunchArgument('precision', default_value='', choices=['', 'fp32', 'fp16', 'bf16'],
                              description='inference precision'),
        DeclareLaunchArgument('mode', default_value='live', choices=['live', 'lossless'],
                              description='live: newest frame (bounded latency); lossless: every frame'),
        DeclareLaunchArgument('label_encoding', default_value='carla_raw',
                              choices=['ids', 'carla_palette', 'carla_raw'],
                              description="what input pixels mean ('carla_raw': CARLA's native camera: the tag in the red channel)"),
        DeclareLaunchArgument('use_sim_time', default_value='true', choices=['true', 'false'],
                              description="stamp and time by the simulator's /clock"),
    ]
    drive = ExecuteProcess(
        cmd=['svsgan', 'carla', '--output', 'none', '--native-ros', '--mode', 'sync',
             '--host', LaunchConfiguration('host'), '--port', LaunchConfiguration('port'),
             '--timeout', LaunchConfiguration('timeout'), '--fixed-delta', LaunchConfiguration('fixed_delta_seconds'),
             '--width', LaunchConfiguration('width'), '--height', LaunchConfiguration('height'),
             '--fov', LaunchConfiguration('fov'), '--role-name', 'hero',
             PythonExpression(["'--instance-camera' if '", LaunchConfiguration('instance_topic'),
                               "' else '--no-instance-camera'"])],
        name='svsgan_carla_driver',
        output='screen',
        sigterm_timeout='15',
        condition=IfCondition(LaunchConfiguration('drive')),
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
    return LaunchDescription(arguments + [drive, generator])
