"""ROS 2 node: semantic-segmentation image topics in, SVS-GAN frames out (docs/ros.md).

Thin on purpose: parameters, QoS, subscriptions and publishers live here; queues, sequence rules,
batching and statistics live in svs_gan_ros.engine, which runs and is tested without ROS.
"""

from __future__ import annotations

import array
import json
import re
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from functools import partial

# Ctrl-C in the first seconds, while rclpy, cv2 and torch import, is noted and acted on once they
# have (below the imports): a KeyboardInterrupt inside an extension's initialisation prints a
# traceback of its own.
_early_interrupt: list[int] = []
_main_thread = threading.current_thread() is threading.main_thread()
if _main_thread:
    _previous_sigint = signal.signal(signal.SIGINT, lambda *_: _early_interrupt.append(1))

import cv2
import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from svs_gan_ros.engine import (
    CameraConfig,
    SynthesisEngine,
    camera_info_topic,
    is_compressed_topic,
    status_line,
)
from svs_gan_ros.params import LABEL_ENCODINGS, PARAMS, qos_choice, qos_text
from svs_gan_ros.ros_args import check_ros_args, init_error

from svsgan_core.errors import REPORT_BUGS, InputError, debug_requested, user_message
from svsgan_core.io import rosio

if _main_thread:
    signal.signal(signal.SIGINT, _previous_sigint)
if _early_interrupt:
    raise SystemExit(0)  # Ctrl-C before the node existed: nothing to clean up, nothing to report

NODE_NAME = 'svs_gan_generator'
_RELIABILITY = {
    'reliable': ReliabilityPolicy.RELIABLE,
    'best_effort': ReliabilityPolicy.BEST_EFFORT,
}


@dataclass
class _Outputs:
    image: Publisher
    compressed: Publisher | None = None
    camera_info: Publisher | None = None
    last_info: CameraInfo | None = None


class GeneratorNode(Node):
    """Subscribes to each camera's labels, hands frames to the engine, publishes its output."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        p = self._declare_parameters()
        self._p = p
        cameras = self._camera_configs(p)
        self._check_topic_names(p)
        if not p['checkpoint']:
            raise InputError("parameter 'checkpoint' is empty: name an svsgan checkpoint folder")
        from svsgan_core.runtime.backend import set_threads
        from svsgan_core.runtime.synthesizer import VideoSynthesizer

        set_threads(p['num_threads'])
        try:
            self.synth = VideoSynthesizer.from_checkpoint(
                p['checkpoint'], device=p['device'], precision=p['precision']
            )
        except (RuntimeError, AssertionError) as exc:  # torch: no such device, CUDA not built in
            raise InputError(f"cannot use device {p['device']!r}: {exc}") from None
        self.engine = SynthesisEngine(
            self.synth,
            cameras,
            self._publish,
            self.get_logger(),
            mode=p['mode'],
            label_space=p['label_space'],
            carla_version=p['carla_version'],
            reset_gap_s=p['reset_gap_s'],
            max_pending=p['max_pending'],
            max_pending_mb=p['max_pending_mb'],
            max_megapixels=p['max_megapixels'],
            reference_max_offset_s=p['reference_max_offset_s'],
            reference_wait_s=p['reference_wait_s'],
            log_throttle_s=p['log_throttle_s'],
            instance_queue_size=p['instance_queue_size'],
            instance_wait_s=p['instance_wait_s'],
        )
        in_qos = self._qos(p['input_reliability'], p['input_depth'], 'input')
        out_qos = self._qos(p['output_reliability'], p['output_depth'], 'output')
        self._outputs: list[_Outputs] = []
        for i, cam in enumerate(cameras):
            self._subscribe_image(cam.input_topic, partial(self.engine.submit, i), in_qos, partial(self._lost, i))
            out = _Outputs(self.create_publisher(Image, cam.output_topic, out_qos))
            if p['publish_compressed']:
                out.compressed = self.create_publisher(
                    CompressedImage, cam.output_topic + '/compressed', out_qos
                )
            if p['publish_camera_info']:
                out.camera_info = self.create_publisher(
                    CameraInfo, camera_info_topic(cam.output_topic), out_qos
                )
                self.create_subscription(
                    CameraInfo,
                    camera_info_topic(cam.input_topic),
                    partial(self._on_camera_info, out),
                    in_qos,
                )
            if cam.reference_topic:
                self._subscribe_image(cam.reference_topic, partial(self.engine.submit_reference, i), in_qos)
            if cam.instance_topic:
                self._subscribe_image(
                    cam.instance_topic,
                    partial(self.engine.submit_instances, i),
                    in_qos,
                    partial(self._lost, i, topic=cam.instance_topic),
                )
            self._outputs.append(out)
        self._status_pub = None
        self._logged_counts = None
        if p['status_period_s'] > 0:
            if p['status_topic']:
                self._status_pub = self.create_publisher(String, p['status_topic'], 10)
            self.create_timer(
                p['status_period_s'], self._report, clock=Clock(clock_type=ClockType.STEADY_TIME)
            )
        self.engine.start()
        h, w = self.synth.resolution
        in_choice = qos_choice(p['input_reliability'], p['input_depth'], p['mode'], 'input')
        self.get_logger().info(
            f"ready: {len(cameras)} camera(s), mode {p['mode']}, model {w}x{h} "
            f"{self.synth.cfg.label_space} on {p['device']} ({p['precision']}); "
            f"input QoS {qos_text(in_choice)}; "
            + '; '.join(
                f'{self.resolve_topic_name(c.input_topic)} [{c.label_encoding}]'
                + (f' + instances {self.resolve_topic_name(c.instance_topic)}' if c.instance_topic else '')
                + f' -> {self.resolve_topic_name(c.output_topic)}'
                for c in cameras
            )
        )

    def _subscribe_image(self, topic: str, callback, qos: QoSProfile, lost=None) -> None:
        """Image, or CompressedImage for an image_transport '.../compressed' name; `lost` gets the
        subscription's message-lost events."""
        kind = CompressedImage if is_compressed_topic(topic) else Image
        events = SubscriptionEventCallbacks(message_lost=lost) if lost is not None else None
        self.create_subscription(kind, topic, callback, qos, event_callbacks=events)

    def _declare_parameters(self) -> dict:
        values = {}
        for spec in PARAMS:
            desc = ParameterDescriptor(
                description=spec.description,
                additional_constraints=spec.constraints,
                read_only=True,
            )
            if spec.int_range:
                desc.integer_range = [
                    IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)
                ]
            if spec.float_range:
                desc.floating_point_range = [
                    FloatingPointRange(
                        from_value=float(spec.float_range[0]),
                        to_value=float(spec.float_range[1]),
                        step=0.0,
                    )
                ]
            if spec.default == 'string_array':
                param = self._declare_string_array(spec.name, desc)
            else:
                param = self.declare_parameter(spec.name, spec.default, desc)
            value = param.value
            if value is None and (spec.default == 'string_array' or isinstance(spec.default, list)):
                value = []  # `[]` in a params file or `-p name:=[]`: rclpy cannot type an empty list
            if spec.choices and value not in spec.choices:
                raise InputError(f'parameter {spec.name}: {value!r} is not {spec.constraints}')
            values[spec.name] = list(value) if isinstance(value, (list, tuple)) else value
        return values

    def _declare_string_array(self, name: str, desc: ParameterDescriptor) -> Parameter:
        """A string list that may be left out, holding [] then. rclpy cannot take [] as a default (it
        reads as a byte array) and answers `ros2 param dump`/`get` with nothing for an unset parameter:
        declare the type writable, set [] if nothing was passed, then make it read-only."""
        kind = Parameter.Type.STRING_ARRAY
        self.declare_parameter(name, kind, ParameterDescriptor(description=desc.description))
        try:
            self.get_parameter(name)
        except ParameterUninitializedException:
            self.set_parameters([Parameter(name, kind, [])])
        desc.type = kind.value
        self.set_descriptor(name, desc)
        return self.get_parameter(name)

    @staticmethod
    def _camera_configs(p: dict) -> list[CameraConfig]:
        inputs, outputs = p['input_topics'], p['output_topics']
        if not inputs:
            raise InputError(
                'parameter input_topics is empty: name one segmentation image topic per camera, '
                "e.g. ['/carla/ego_vehicle/semantic_segmentation_front/image']"
            )
        if len(inputs) != len(outputs):
            raise InputError(
                f'input_topics ({len(inputs)}) and output_topics ({len(outputs)}) must be '
                'non-empty lists of the same length'
            )
        encodings = p['label_encodings'] or [p['label_encoding']] * len(inputs)
        references = p['reference_topics'] or [''] * len(inputs)
        instances = p['instance_topics'] or [''] * len(inputs)
        for name, values in (
            ('label_encodings', encodings),
            ('reference_topics', references),
            ('instance_topics', instances),
        ):
            if len(values) != len(inputs):
                raise InputError(
                    f'{name} has {len(values)} entries, input_topics {len(inputs)}: '
                    'give one per camera'
                )
        bad = [e for e in encodings if e not in LABEL_ENCODINGS]
        if bad:
            raise InputError(
                f"label_encodings: {bad[0]!r} is not one of {', '.join(LABEL_ENCODINGS)}"
            )
        return [
            CameraConfig(i, o, e, r, n)
            for i, o, e, r, n in zip(inputs, outputs, encodings, references, instances)
        ]

    def _check_topic_names(self, p: dict) -> None:
        """Every topic parameter resolved as rclpy will: a bad name stops the node with one line naming
        the parameter, before the model loads."""
        lists = ('input_topics', 'output_topics', 'reference_topics', 'instance_topics')
        names = [(name, t) for name in lists for t in p[name]]
        for param, topic in names + [('status_topic', p['status_topic'])]:
            if not topic and param in ('reference_topics', 'instance_topics', 'status_topic'):
                continue  # '' is "none" for these
            try:
                self.resolve_topic_name(topic)
            except RuntimeError as exc:  # rclpy's RCLError: "failed to resolve name: <why>, at <file>:<line>"
                why = re.sub(r'^failed to resolve name: |, at \S+$', '', str(exc).splitlines()[0])
                raise InputError(
                    f'parameter {param}: {topic!r} is not a valid ROS topic name ({why}); '
                    'use letters, digits, _ and / as in /camera/semantic'
                ) from None

    def _qos(self, reliability: str, depth: int, direction: str) -> QoSProfile:
        reliability, depth = qos_choice(reliability, depth, self._p['mode'], direction)
        return QoSProfile(
            history=HistoryPolicy.KEEP_ALL if depth == 0 else HistoryPolicy.KEEP_LAST,
            depth=depth or 1,
            reliability=_RELIABILITY[reliability],
            durability=DurabilityPolicy.VOLATILE,
        )

    def _lost(self, index: int, info, topic: str = '') -> None:
        self.engine.message_lost(index, info.total_count_change, topic)

    def _on_camera_info(self, out: _Outputs, msg: CameraInfo) -> None:
        out.last_info = msg

    def _publish(self, index: int, rgb, msg) -> None:
        """Called from the engine's worker thread with a generated RGB frame and its input."""
        try:
            self._publish_frame(index, rgb, msg)
        except Exception:
            if self.context.ok():
                raise  # the engine logs it; after shutdown (Ctrl-C mid-frame) there is nothing to do

    def _publish_frame(self, index: int, rgb, msg) -> None:
        out = self._outputs[index]
        encoding = self._p['output_encoding']
        image = Image(header=msg.header)
        rosio.fill_image(
            image, rgb if encoding == 'rgb8' else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), encoding
        )
        out.image.publish(image)
        if out.compressed is not None:
            fmt, data = rosio.compress(
                rgb, 'jpeg', quality=self._p['jpeg_quality'], encoding='rgb8'
            )
            buf = array.array('B')
            buf.frombytes(data)
            out.compressed.publish(CompressedImage(header=msg.header, format=fmt, data=buf))
        info = out.last_info
        if out.camera_info is not None and info is not None:
            info.header = msg.header
            out.camera_info.publish(info)

    def _report(self) -> None:
        status = self.engine.status()
        status.update(
            node=self.get_fully_qualified_name(), now_ns=self.get_clock().now().nanoseconds
        )
        counts = [
            (c['received'], c['published'], c['dropped_bad'], c['dropped_overflow'], c['lost'],
             c['dropped_unpaired'], c['instances_unpaired'])
            for c in status['cameras']
        ]
        if counts != self._logged_counts:
            self.get_logger().info(status_line(status))
            self._logged_counts = counts
        if self._status_pub is not None:
            self._status_pub.publish(String(data=json.dumps(status)))

    def destroy_node(self) -> None:
        engine = getattr(self, 'engine', None)
        if engine is not None:
            engine.stop(timeout=10.0)
        super().destroy_node()


def usage() -> str:
    """`generator_node --help`: what it does and every parameter, without starting ROS."""
    lines = [
        'usage: ros2 run svs_gan_ros generator_node --ros-args -p checkpoint:=DIR [-p name:=value ...]',
        '       (or --params-file config/params.yaml; see docs/ros.md)',
        '',
        'SVS-GAN generator node: semantic-segmentation image topics in, generated frames out.',
        '',
        'parameters:',
    ]
    for spec in PARAMS:
        default = '[]' if spec.default == 'string_array' else repr(spec.default)
        extra = f' [{spec.constraints}]' if spec.constraints else ''
        lines.append(f'  {spec.name} = {default}{extra}\n      {spec.description}')
    return '\n'.join(lines)


def _report(exc: BaseException, started: bool, debug: bool) -> int:
    """The last net: one [FATAL] line for what the user can fix (its traceback only with --debug or
    SVSGAN_DEBUG=1), the traceback and where to report it for a bug. Returns the exit status."""
    message = str(exc) if isinstance(exc, ParameterException) else user_message(exc)
    if message is None or debug:
        traceback.print_exception(exc, file=sys.stderr)
    logger = rclpy.logging.get_logger(NODE_NAME)
    logger.fatal(REPORT_BUGS if message is None else message if started else f'cannot start: {message}')
    return 1


def main(args=None) -> int:
    argv = sys.argv[1:] if args is None else list(args)
    own = argv[: argv.index('--ros-args')] if '--ros-args' in argv else argv
    if '-h' in own or '--help' in own:
        print(usage())
        return 0
    debug = '--debug' in own or debug_requested()
    node = None
    code = 0
    try:
        check_ros_args(argv)
        try:
            rclpy.init(args=args)
        except RuntimeError as exc:  # RCLError: rcl refused the command line before any node existed
            rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {init_error(exc)}')
            return 1
        node = GeneratorNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - the last net: see _report
        # SIGINT shuts the context down under the executor; a take that was in flight then fails
        # inside rclpy's bindings. That is the shutdown we asked for, not an error; anything else is.
        if not (isinstance(exc, RuntimeError) and not rclpy.ok()):
            code = _report(exc, node is not None, debug)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
