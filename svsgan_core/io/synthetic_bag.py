"""Procedural street scenes as a ROS 2 bag, recorded the way carla-ros-bridge publishes a camera.

The bundled demo sequence (scripts/make_demo_bag.py), the bag tests and the conversion benchmark
use it. Labels come from svsgan_core.data.synthetic (Cityscapes trainIds) drawn in CARLA's
CityScapesPalette as `bgra8`: for the 19 trainIds the Cityscapes and CARLA 0.9.14+ colours are the
same and ignore (black) is CARLA's "unlabeled", so `encode_palette(ids, "cityscapes")` draws what
CARLA draws, and decoding the bag with `carla_palette` gives the trainIds back exactly.

Per frame, in the bridge's order: /clock, the semantic image, its camera_info and, with `rgb`, the
RGB camera (the rendered image, also bgra8; with `rgb_jpeg`, image_transport's JPEG of it on
`<camera>/compressed` instead, a tenth of the size) — all with the same header stamp, received a
few milliseconds later in bag time. With `instances`, CARLA's instance camera too (`bgra8`: the
class's CARLA tag in R, the object's id in G and B), received just before the semantic image.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..data.instances import instance_colour_image
from ..data.labels import mapping_table
from ..data.synthetic import generate_sequence
from .bags import BagWriter, writer_version
from .encoding import encode_palette
from .rosio import compress, image_fields

SEMANTIC_TOPIC = "/carla/ego_vehicle/semantic_segmentation_front/image"
CAMERA_INFO_TOPIC = "/carla/ego_vehicle/semantic_segmentation_front/camera_info"
RGB_TOPIC = "/carla/ego_vehicle/rgb_front/image"
RGB_COMPRESSED_TOPIC = f"{RGB_TOPIC}/compressed"  # image_transport's name for its JPEG
INSTANCE_TOPIC = "/carla/ego_vehicle/instance_segmentation_front/image"
CLOCK_TOPIC = "/clock"
SEMANTIC_FRAME = "ego_vehicle/semantic_segmentation_front"
INSTANCE_FRAME = "ego_vehicle/instance_segmentation_front"
IMAGE_MSG = "sensor_msgs/msg/Image"
RGB_FRAME = "ego_vehicle/rgb_front"
START_NS = 10_000_000_000  # simulation time of the first frame
_RECEIVE_DELAY_NS = (0, 2_000_000, 2_500_000, 3_000_000)  # clock, semantic, camera_info, rgb
_INSTANCE_DELAY_NS = 1_000_000  # the instance camera's image arrives before the semantic one


def _qos(depth: int, reliable: bool = True):
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    infinite = QosTime(sec=9223372036, nsec=854775807)
    return [Qos(QosHistory.KEEP_LAST, depth,
                QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT, QosDurability.VOLATILE,
                infinite, infinite, QosLiveliness.AUTOMATIC, infinite, False)]


def write_semantic_bag(dest: str | os.PathLike, *, frames: int, height: int, width: int, seed: int = 0,
                       fps: float = 20.0, storage: str = "mcap", rgb: bool = False, rgb_jpeg: int | None = None,
                       typestore: str = "jazzy", fov_deg: float = 90.0, chunk_compression: bool = False,
                       overwrite: bool = False, instances: bool = False, touching: bool = False) -> Path:
    """Render `frames` synthetic frames and write them as a CARLA-style bag folder at `dest`.
    `rgb_jpeg`: the RGB camera as JPEG of this quality on RGB_COMPRESSED_TOPIC (implies `rgb`).
    `instances`: CARLA's instance camera on INSTANCE_TOPIC; `touching`: streets of touching objects."""
    from rosbags.typesys import Stores, get_typestore

    images, labels, *ids = generate_sequence(seed, frames, height, width, return_instances=instances,
                                             touching=touching)
    store = get_typestore(Stores(f"ros2_{typestore}"))
    t = store.types
    focal = width / (2 * math.tan(math.radians(fov_deg) / 2))
    cx, cy = width / 2, height / 2
    with BagWriter(dest, storage, version=writer_version(distro=typestore), overwrite=overwrite,
                   chunk_compression=chunk_compression) as out:
        clock = out.add_topic(CLOCK_TOPIC, "rosgraph_msgs/msg/Clock", store, qos=_qos(10))
        semantic = out.add_topic(SEMANTIC_TOPIC, "sensor_msgs/msg/Image", store, qos=_qos(10))
        info = out.add_topic(CAMERA_INFO_TOPIC, "sensor_msgs/msg/CameraInfo", store, qos=_qos(10))
        instance = out.add_topic(INSTANCE_TOPIC, "sensor_msgs/msg/Image", store, qos=_qos(10)) if instances else None
        camera = None
        if rgb_jpeg is not None:
            camera = out.add_topic(RGB_COMPRESSED_TOPIC, "sensor_msgs/msg/CompressedImage", store, qos=_qos(10))
        elif rgb:
            camera = out.add_topic(RGB_TOPIC, "sensor_msgs/msg/Image", store, qos=_qos(10))
        for i in range(frames):
            ns = START_NS + round(i * 1e9 / fps)
            stamp = t["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
            header = t["std_msgs/msg/Header"](stamp=stamp, frame_id=SEMANTIC_FRAME)
            bgra = cv2.cvtColor(encode_palette(labels[i], "cityscapes"), cv2.COLOR_RGB2BGRA)
            messages = [
                (clock, t["rosgraph_msgs/msg/Clock"](clock=stamp)),
                (semantic, _image(t, header, bgra)),
                (info, t["sensor_msgs/msg/CameraInfo"](
                    header=header, height=height, width=width, distortion_model="plumb_bob",
                    d=np.zeros(5), k=np.array([focal, 0, cx, 0, focal, cy, 0, 0, 1], float),
                    r=np.eye(3).ravel(), p=np.array([focal, 0, cx, 0, 0, focal, cy, 0, 0, 0, 1, 0], float),
                    binning_x=0, binning_y=0,
                    roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                              do_rectify=False))),
            ]
            if camera is not None:
                rgb_header = t["std_msgs/msg/Header"](stamp=stamp, frame_id=RGB_FRAME)
                bgra = cv2.cvtColor(images[i], cv2.COLOR_RGB2BGRA)
                if rgb_jpeg is None:
                    messages.append((camera, _image(t, rgb_header, bgra)))
                else:
                    fmt, data = compress(bgra, "jpeg", rgb_jpeg, encoding="bgra8")
                    messages.append((camera, t["sensor_msgs/msg/CompressedImage"](
                        header=rgb_header, format=fmt, data=np.frombuffer(data, np.uint8))))
            if instance is not None:
                key = (_TRAIN_TO_CARLA[labels[i]].astype(np.int32) << 16) | ids[0][i]
                bgra = cv2.cvtColor(instance_colour_image(key), cv2.COLOR_RGB2BGRA)
                out.write(instance, ns + _INSTANCE_DELAY_NS, store.serialize_cdr(
                    _image(t, t["std_msgs/msg/Header"](stamp=stamp, frame_id=INSTANCE_FRAME), bgra), IMAGE_MSG))
            for (conn, msg), delay in zip(messages, _RECEIVE_DELAY_NS):
                out.write(conn, ns + delay, store.serialize_cdr(msg, conn.msgtype))
        return out.commit()


def _carla_tags_of_train_ids() -> np.ndarray:
    """trainId -> the (first) CARLA 0.9.14+ tag that maps to it, 0 (unlabeled) for ignore."""
    table = mapping_table("carla", "cityscapes")
    lut = np.zeros(256, np.uint8)
    for tag in range(len(table) - 1, -1, -1):
        if table[tag] != 255:
            lut[table[tag]] = tag
    return lut


_TRAIN_TO_CARLA = _carla_tags_of_train_ids()


def _image(types, header, bgra: np.ndarray):
    return types["sensor_msgs/msg/Image"](header=header, **image_fields(bgra, "bgra8"))
