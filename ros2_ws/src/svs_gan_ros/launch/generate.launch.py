"""Start the SVS-GAN generator node.

    ros2 launch svs_gan_ros generate.launch.py checkpoint:=/path/to/ckpt \
        input_topic:=/carla/ego_vehicle/semantic_segmentation_front/image \
        output_topic:=/svsgan/front/image label_encoding:=carla_palette mode:=live \
        num_threads:=4 input_reliability:=reliable input_depth:=0 \
        instance_topic:=/carla/hero/instance_segmentation/image

Arguments left empty keep the value from params_file (default: this package's config/params.yaml);
arguments given override it. use_sim_time defaults to true so that frames line up with /clock.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

# launch argument -> (node parameter, description, choices or None); '' keeps params_file's value
ARGUMENTS = {
    'checkpoint': ('checkpoint', 'svsgan checkpoint folder', None),
    'input_topic': (
        'input_topics',
        'segmentation image topic (one camera; lists go in params_file)',
        None,
    ),
    'output_topic': ('output_topics', 'generated image topic (one camera)', None),
    'instance_topic': (
        'instance_topics',
        'instance-segmentation image topic paired with the labels by exact stamp (one camera)',
        None,
    ),
    'label_encoding': (
        'label_encoding',
        'what input pixels mean',
        ['', 'ids', 'carla_palette', 'carla_raw'],
    ),
    'label_space': ('label_space', "label space of 'ids' input (empty: the checkpoint's)", None),
    'device': ('device', "torch device, e.g. 'cpu' or 'cuda'", None),
    'precision': ('precision', 'inference precision', ['', 'fp32', 'fp16', 'bf16']),
    'mode': (
        'mode',
        'live (newest frame, bounded latency) or lossless (every frame, in order)',
        ['', 'live', 'lossless'],
    ),
    'num_threads': ('num_threads', 'CPU threads for torch (default 1; 0: one per core)', None),
    'input_reliability': (
        'input_reliability',
        'input QoS reliability (auto: best_effort when live, reliable when lossless)',
        ['', 'auto', 'reliable', 'best_effort'],
    ),
    'input_depth': (
        'input_depth',
        'input QoS history depth (0: 5 when live, keep_all when lossless)',
        None,
    ),
    'output_reliability': (
        'output_reliability',
        'output QoS reliability',
        ['', 'auto', 'reliable', 'best_effort'],
    ),
    'output_depth': (
        'output_depth',
        'output QoS history depth (0: 5 when live, 100 when lossless)',
        None,
    ),
}
LIST_PARAMETERS = ('input_topics', 'output_topics', 'instance_topics')
# integer node parameters: a launch argument is text, and the node declares these as integers
INTEGER_PARAMETERS = ('num_threads', 'input_depth', 'output_depth')


def _typed(argument, parameter, value):
    if parameter in LIST_PARAMETERS:
        return [value]
    if parameter in INTEGER_PARAMETERS:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f'launch argument {argument}: expected an integer, got {value!r}') from None
    return value


def _node(context, *args, **kwargs):
    overrides = {}
    for argument, (parameter, _, _) in ARGUMENTS.items():
        value = LaunchConfiguration(argument).perform(context)
        if value:
            overrides[parameter] = _typed(argument, parameter, value)
    overrides['use_sim_time'] = (
        LaunchConfiguration('use_sim_time').perform(context).lower() == 'true'
    )
    return [
        Node(
            package='svs_gan_ros',
            executable='generator_node',
            name='svs_gan_generator',
            output='screen',
            emulate_tty=True,
            parameters=[LaunchConfiguration('params_file'), overrides],
        )
    ]


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument(
            name,
            default_value='',
            description=description,
            **({'choices': choices} if choices else {}),
        )
        for name, (_, description, choices) in ARGUMENTS.items()
    ]
    arguments += [
        DeclareLaunchArgument(
            'use_sim_time',
            default_value='true',
            choices=['true', 'false'],
            description='use the /clock topic (simulator or `ros2 bag play --clock`)',
        ),
        DeclareLaunchArgument(
            'params_file',
            description='ROS 2 parameters file for the node',
            default_value=PathJoinSubstitution(
                [FindPackageShare('svs_gan_ros'), 'config', 'params.yaml']
            ),
        ),
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_node)])
