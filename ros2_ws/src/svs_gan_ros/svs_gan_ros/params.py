"""Every parameter of the generator node, in one table.

The node declares its parameters from this table, config/params.yaml documents the same names and
the tests check they agree, so a parameter cannot be added in one place and forgotten in another.
Plain Python (no rclpy) so that it can be read without a ROS installation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from svsgan_core import DEFAULT_THREADS
from svsgan_core.models.config import PRECISIONS

MODES = ('live', 'lossless')
LABEL_ENCODINGS = ('ids', 'carla_palette', 'carla_raw')
RELIABILITY = ('auto', 'reliable', 'best_effort')
OUTPUT_ENCODINGS = ('rgb8', 'bgr8')


@dataclass(frozen=True)
class Param:
    name: str
    default: Any  # a value, or 'string_array' for a string list that may be left out ([] then)
    description: str
    choices: tuple[str, ...] = ()
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None

    @property
    def constraints(self) -> str:
        if self.choices:
            return 'one of: ' + ', '.join(repr(c) for c in self.choices)
        if self.int_range:
            return f'integer in [{self.int_range[0]}, {self.int_range[1]}]'
        if self.float_range:
            return f'number in [{self.float_range[0]}, {self.float_range[1]}]'
        return ''


PARAMS: tuple[Param, ...] = (
    Param(
        'checkpoint',
        '',
        'svsgan checkpoint folder (config.yaml + generator.safetensors); required',
    ),
    Param('device', 'cpu', "torch device for inference: 'cpu', 'cuda', 'cuda:1', ..."),
    Param('precision', 'fp32', 'inference precision (fp16 needs CUDA)', choices=tuple(PRECISIONS)),
    Param(
        'num_threads',
        DEFAULT_THREADS,
        'CPU threads for torch/onnxruntime (default 1, as every svsgan command: right when other '
        'processes share the cores; 0: one per core)',
        int_range=(0, 256),
    ),
    Param(
        'mode',
        'live',
        'live: keep only the newest pending frame per camera (bounded latency); '
        'lossless: process every frame in order (bags, synchronous CARLA)',
        choices=MODES,
    ),
    Param(
        'input_topics',
        ['semantic/image'],
        'segmentation image topics, one per camera; a topic '
        "ending in '/compressed' is read as sensor_msgs/CompressedImage (png)",
    ),
    Param(
        'output_topics',
        ['svsgan/image'],
        'generated image topics, one per input topic, same order',
    ),
    Param(
        'label_encoding',
        'carla_palette',
        'what input pixels mean: ids (mono8/8UC1/mono16/16UC1 class ids), carla_palette '
        '(CityScapesPalette colours, carla-ros-bridge), carla_raw (tag in the red channel)',
        choices=LABEL_ENCODINGS,
    ),
    Param(
        'label_encodings',
        'string_array',
        'per-camera label_encoding, same order as input_topics '
        '(empty: label_encoding for every camera)',
    ),
    Param(
        'label_space',
        '',
        "label space of 'ids' input, a name from svsgan_core.data.labels (cityscapes, "
        "cityscapes_ids, carla, carla_legacy, ...); empty: the checkpoint's own space",
    ),
    Param(
        'carla_version',
        '0.9.16',
        "CARLA version whose tag numbering 'carla_raw' input uses "
        "(0.9.14+ and older numberings differ; 'legacy' = 0.9.13 and older)",
    ),
    Param(
        'reference_topics',
        'string_array',
        'per-camera RGB image topics (e.g. CARLA RGB camera) '
        "whose frame starts each new sequence; '' for none (empty: no camera has one)",
    ),
    Param(
        'reference_max_offset_s',
        0.02,
        'a reference image is used when its stamp is this close to '
        "the sequence's first label frame",
        float_range=(0.0, 10.0),
    ),
    Param(
        'reference_wait_s',
        0.2,
        'at a sequence start, how long the worker waits for a matching '
        'reference image before generating the first frame itself',
        float_range=(0.0, 10.0),
    ),
    Param(
        'instance_topics',
        'string_array',
        "per-camera instance-segmentation image topics (CARLA's bgra8 instance camera, or "
        "mono8/mono16/32SC1 ids) paired with the labels by exact header stamp; '' for none "
        '(empty: no camera has one)',
    ),
    Param(
        'instance_queue_size',
        30,
        'instance pairing: label frames and instance images that may wait for their partner per '
        "camera (message_filters' ExactTime queue size); beyond it the oldest is dropped and counted",
        int_range=(1, 10000),
    ),
    Param(
        'instance_wait_s',
        5.0,
        'instance pairing: a label frame or instance image whose partner has not arrived within '
        'this many seconds is dropped and counted (dropped_unpaired / instances_unpaired)',
        float_range=(0.001, 3600.0),
    ),
    Param(
        'reset_gap_s',
        1.0,
        'a stamp later than the previous one by more than this starts a new '
        'sequence (a stamp going backwards always does)',
        float_range=(0.001, 1.0e6),
    ),
    Param(
        'max_pending',
        1000,
        'lossless mode: frames queued per camera before new ones are dropped '
        'with an error (memory bound)',
        int_range=(1, 1000000),
    ),
    Param(
        'max_pending_mb',
        512.0,
        'lossless mode: MiB of queued message data per camera before new frames are dropped '
        'with an error (the memory bound for large frames; 1,000 bgra8 1024x512 frames are 2 GiB)',
        float_range=(1.0, 1.0e6),
    ),
    Param(
        'max_megapixels',
        64.0,
        'a compressed (png/jpeg) input whose header declares more pixels than this is dropped '
        'before decoding (decompression bombs)',
        float_range=(0.001, 10000.0),
    ),
    Param(
        'input_reliability',
        'auto',
        'input QoS reliability; auto: best_effort in live mode '
        '(sensor-data practice), reliable in lossless mode',
        choices=RELIABILITY,
    ),
    Param(
        'input_depth',
        0,
        'input QoS history depth (0: 5 in live mode; keep_all in lossless mode, so that DDS '
        'flow control holds a reliable publisher back instead of overwriting frames)',
        int_range=(0, 100000),
    ),
    Param(
        'output_reliability',
        'reliable',
        'output QoS reliability (reliable reaches both reliable and '
        'best_effort subscribers; auto: reliable)',
        choices=RELIABILITY,
    ),
    Param(
        'output_depth',
        0,
        'output QoS history depth (0: 5 in live mode, 100 in lossless mode)',
        int_range=(0, 100000),
    ),
    Param(
        'output_encoding',
        'rgb8',
        'encoding of the generated sensor_msgs/Image',
        choices=OUTPUT_ENCODINGS,
    ),
    Param(
        'publish_compressed',
        False,
        "also publish JPEG sensor_msgs/CompressedImage on "
        "'<output topic>/compressed' (image_transport naming)",
    ),
    Param('jpeg_quality', 90, 'JPEG quality of the compressed output', int_range=(1, 100)),
    Param(
        'publish_camera_info',
        False,
        "relay the input camera's CameraInfo (the 'camera_info' topic "
        "beside the input topic) beside each output topic, with the output frame's header",
    ),
    Param(
        'status_period_s',
        5.0,
        'seconds between status reports (log line and status topic); 0: off',
        float_range=(0.0, 3600.0),
    ),
    Param(
        'status_topic', '~/status', 'std_msgs/String topic for JSON status; empty: log line only'
    ),
    Param(
        'log_throttle_s',
        5.0,
        'a warning about the same kind of bad input is repeated at most this ' 'often per camera',
        float_range=(0.0, 3600.0),
    ),
)

BY_NAME = {p.name: p for p in PARAMS}


def qos_choice(reliability: str, depth: int, mode: str, direction: str) -> tuple[str, int]:
    """Resolve 'auto' and depth 0: inputs follow sensor-data practice (best effort, shallow) in
    live mode and are reliable with keep_all history (depth 0 in the result) in lossless mode;
    outputs are reliable, which every subscriber, reliable or best effort, can receive.

    A keep_last history overwrites what the callback has not taken yet, silently: a burst from a
    reliable publisher then loses frames. keep_all makes the reader stop acknowledging when it is
    full, so the publisher waits (DDS flow control) and nothing is lost."""
    if reliability == 'auto':
        reliability = 'best_effort' if direction == 'input' and mode == 'live' else 'reliable'
    if depth:
        return reliability, depth
    if mode == 'live':
        return reliability, 5
    return reliability, 0 if direction == 'input' else 100


def qos_text(choice: tuple[str, int]) -> str:
    reliability, depth = choice
    return f"{reliability}, {'keep_all' if depth == 0 else f'keep_last {depth}'}"
