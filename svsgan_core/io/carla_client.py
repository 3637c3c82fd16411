"""Drive a CARLA server directly and turn its semantic camera into generated frames.

No ROS needed for the logic: the session talks to CARLA through the ``carla`` client module (the
``carla==0.9.16`` wheel), the synthesizer is ``VideoSynthesizer``, and the output is a sink: ROS 2
topics (rclpy, imported only by ``RosSink``) or a bag (rosbags, imported only by ``BagSink``).

    with CarlaSession(CarlaConfig(...)) as session:
        drive(session, synthesizer, sink)

Guarantees that matter on a live simulator:
  - the world's settings (synchronous mode, fixed step) and the Traffic Manager's mode are restored
    and every actor this client spawned is destroyed on exit, also on Ctrl-C and on errors;
  - every blocking call has a timeout (``client.set_timeout`` for RPCs, a timed wait for sensor
    data), so a lost server is a ``CarlaError`` after ``timeout`` seconds, never a hang.

``carla.Image.raw_data`` (0.9.16 wheel stubs: "an image of 32-bit BGRA colors", "flattened array of
pixel data") is height x width x 4 bytes, row-major, B G R A; the semantic camera writes the CARLA tag
into R (docs/ros.md, the input encodings table), the instance camera the tag into R and the object's
16-bit id into G (low byte) and B (high byte) (``encoding.carla_instance_ids``).
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from ..data.labels import carla_space_for_version
from ..errors import InputError, SvsganError
from .encoding import LabelDecoder, decode_instances
from .rosio import fill_image
from .timeline import SequenceTimeline

log = logging.getLogger("svsgan.carla")

SEMANTIC_BLUEPRINT = "sensor.camera.semantic_segmentation"
RGB_BLUEPRINT = "sensor.camera.rgb"
INSTANCE_BLUEPRINT = "sensor.camera.instance_segmentation"


class CarlaError(SvsganError):
    """The CARLA server is unreachable or lost, or the world cannot be set up as asked."""


# ------------------------------------------------------------------------------------------------
# configuration


@dataclass
class CameraSpec:
    """Resolution, horizontal FOV (degrees) and pose relative to the vehicle (CARLA axes: x forward,
    y right, z up, metres; pitch, yaw, roll in degrees)."""

    width: int = 1024
    height: int = 512
    fov: float = 90.0
    x: float = 1.5
    y: float = 0.0
    z: float = 2.4
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"camera resolution must be positive, got {self.width}x{self.height}")
        if not 0 < self.fov < 180:
            raise InputError(f"camera fov must be in (0, 180) degrees, got {self.fov}")

    @staticmethod
    def parse_pose(text: str) -> dict[str, float]:
        """``"x,y,z"`` or ``"x,y,z,roll,pitch,yaw"`` -> keyword arguments."""
        try:
            values = [float(v) for v in str(text).split(",")]
        except ValueError:
            values = []
        if len(values) not in (3, 6):
            raise InputError(f"camera pose must be 'x,y,z' or 'x,y,z,roll,pitch,yaw' (metres, degrees), got {text!r}")
        return dict(zip(("x", "y", "z", "roll", "pitch", "yaw"), values))


@dataclass
class CarlaConfig:
    host: str = "127.0.0.1"
    port: int = 2000
    timeout: float = 10.0
    role_name: str = "hero"
    spawn: bool = True
    vehicle_filter: str = "vehicle.*"
    tm_port: int = 8000
    seed: int | None = None
    camera: CameraSpec = field(default_factory=CameraSpec)
    reference_rgb: bool = False
    instance_camera: bool = False
    mode: str = "sync"
    fixed_delta_seconds: float = 0.05
    native_ros: bool = False
    semantic_ros_name: str = "semantic_segmentation"
    rgb_ros_name: str = "rgb"
    instance_ros_name: str = "instance_segmentation"
    listen: bool = True
    carla_version: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("sync", "passive"):
            raise InputError(f"mode must be 'sync' or 'passive', got {self.mode!r}")
        if not self.timeout > 0:
            raise InputError(f"timeout must be positive, got {self.timeout}")
        if self.mode == "sync" and not self.fixed_delta_seconds > 0:
            raise InputError(f"synchronous mode needs fixed_delta_seconds > 0, got {self.fixed_delta_seconds}")


@dataclass
class Frame:
    """One semantic camera frame, stamped with simulator time."""

    frame: int
    stamp_ns: int
    bgra: np.ndarray
    reference_rgb: np.ndarray | None = None
    instance_bgra: np.ndarray | None = None  # the instance camera's raw image of the same tick

    @property
    def tags(self) -> np.ndarray:
        """HxW CARLA tags (the red channel of the raw BGRA image)."""
        return np.ascontiguousarray(self.bgra[:, :, 2])


def seconds_to_ns(seconds: float) -> int:
    return int(round(float(seconds) * 1e9))


def image_to_bgra(image: Any) -> np.ndarray:
    """``carla.Image`` -> a fresh HxWx4 uint8 BGRA array (the image's buffer belongs to CARLA)."""
    h, w = int(image.height), int(image.width)
    data = np.frombuffer(image.raw_data, dtype=np.uint8)
    if data.size != h * w * 4:
        raise CarlaError(f"camera image frame {image.frame}: {data.size} bytes for {w}x{h} BGRA (expected {h * w * 4})")
    return data.reshape(h, w, 4).copy()


# ------------------------------------------------------------------------------------------------
# sensor data from CARLA's worker threads


class SensorBuffer:
    """The newest few images of one camera, keyed by simulator frame; CARLA's threads fill it."""

    def __init__(self, keep: int = 4):
        self._cond = threading.Condition()
        self._items: OrderedDict[int, tuple[int, np.ndarray]] = OrderedDict()
        self._keep = keep
        self.error: BaseException | None = None

    def __call__(self, image: Any) -> None:
        try:
            item = (seconds_to_ns(image.timestamp), image_to_bgra(image))
        except BaseException as exc:  # an exception in CARLA's thread would be lost; hand it over
            with self._cond:
                self.error = exc
                self._cond.notify_all()
            return
        with self._cond:
            self._items[int(image.frame)] = item
            while len(self._items) > self._keep:
                self._items.popitem(last=False)
            self._cond.notify_all()

    def _raise_error(self) -> None:
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def take(self, frame: int, timeout: float) -> tuple[int, np.ndarray] | None:
        """The image of ``frame``; None when a newer one arrived instead (frame skipped).

        Raises TimeoutError when nothing for ``frame`` or later arrives within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._raise_error()
                if frame in self._items:
                    item = self._items[frame]
                    for f in [f for f in self._items if f <= frame]:
                        del self._items[f]
                    return item
                if any(f > frame for f in self._items):
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(frame)
                self._cond.wait(left)

    def newest_after(self, frame: int, timeout: float) -> tuple[int, int, np.ndarray]:
        """The newest image later than ``frame`` as (frame, stamp_ns, bgra), dropping older ones."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._raise_error()
                newer = [f for f in self._items if f > frame]
                if newer:
                    f = max(newer)
                    stamp, bgra = self._items[f]
                    for old in [k for k in self._items if k <= f]:
                        del self._items[old]
                    return f, stamp, bgra
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(frame)
                self._cond.wait(left)


# ------------------------------------------------------------------------------------------------
# the session: world setup, frames, teardown


def import_carla() -> Any:
    try:
        import carla  # noqa: PLC0415 - optional extra, only `svsgan carla` needs it
    except ImportError as exc:
        raise CarlaError(
            f"the CARLA client module is not installed ({exc}); install it with "
            "`pip install 'svsgan[carla]'` (carla==0.9.16, Python 3.11/3.12)"
        ) from None
    return carla


class CarlaSession:
    """Connects, prepares the world (settings, ego vehicle, cameras) and always puts it back.

    ``carla_module`` is the ``carla`` client module; tests pass an in-process stand-in.
    """

    def __init__(self, config: CarlaConfig, carla_module: Any = None):
        self.cfg = config
        self.carla = carla_module
        self.client = self.world = self.vehicle = self.traffic_manager = None
        self.server_version: str | None = None
        self.label_version: str = config.carla_version or "0.9.16"
        self.sensors: list[Any] = []
        self.semantic = SensorBuffer()
        self.rgb = SensorBuffer() if config.reference_rgb else None
        self.instance = SensorBuffer() if config.instance_camera else None
        self._original_settings = None
        self._spawned_vehicle = False
        self._tm_sync_set = False
        self._server_lost = False
        self._last_frame = -1

    # -- context --------------------------------------------------------------------------------
    def __enter__(self) -> "CarlaSession":
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def where(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    def _lost(self, exc: BaseException, doing: str) -> CarlaError:
        self._server_lost = True
        return CarlaError(
            f"lost the CARLA server at {self.where} while {doing} (no answer within {self.cfg.timeout:g} s): {exc}. "
            "Is the simulator running and reachable? Raise --timeout if it is just slow (e.g. loading a map)."
        )

    def _rpc(self, doing: str, fn: Callable, *args, **kwargs):
        """Call the CARLA client; its RuntimeError (time-out, connection refused) becomes a CarlaError."""
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:
            raise self._lost(exc, doing) from None

    # -- setup ----------------------------------------------------------------------------------
    def open(self) -> None:
        if self.carla is None:
            self.carla = import_carla()
        cfg, carla = self.cfg, self.carla
        self.client = carla.Client(cfg.host, cfg.port)
        self.client.set_timeout(float(cfg.timeout))
        self.server_version = self._rpc("asking for its version", self.client.get_server_version)
        client_version = self.client.get_client_version()
        if self.server_version != client_version:
            log.warning("CARLA server %s but client module %s: versions should match", self.server_version, client_version)
        if cfg.carla_version is None:
            self.label_version = self.server_version
        carla_space_for_version(self.label_version)
        self.world = self._rpc("getting the world", self.client.get_world)
        self._setup_settings()
        self.vehicle = self._find_or_spawn_vehicle()
        self._attach_cameras()

    def _setup_settings(self) -> None:
        if self.cfg.mode != "sync":
            return
        original = self._rpc("reading world settings", self.world.get_settings)
        if original.synchronous_mode:
            log.warning("the world is already in synchronous mode: if another client ticks it, use passive mode")
        settings = self._rpc("reading world settings", self.world.get_settings)
        self._original_settings = original
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = float(self.cfg.fixed_delta_seconds)
        self._rpc("switching to synchronous mode", self.world.apply_settings, settings)

    def _find_or_spawn_vehicle(self) -> Any:
        cfg = self.cfg
        actors = self._rpc("listing actors", self.world.get_actors).filter("vehicle.*")
        heroes = sorted((a for a in actors if a.attributes.get("role_name") == cfg.role_name), key=lambda a: a.id)
        if heroes:
            if len(heroes) > 1:
                log.warning("%d vehicles have role_name %r; using id %d", len(heroes), cfg.role_name, heroes[0].id)
            log.info("using vehicle %s (id %d, role_name %r)", heroes[0].type_id, heroes[0].id, cfg.role_name)
            return heroes[0]
        if not cfg.spawn:
            raise CarlaError(f"no vehicle with role_name {cfg.role_name!r} in the world, and spawning was turned off")
        return self._spawn_vehicle()

    def _spawn_vehicle(self) -> Any:
        cfg, rng = self.cfg, random.Random(self.cfg.seed)
        library = self._rpc("reading the blueprint library", self.world.get_blueprint_library)
        blueprints = sorted(library.filter(cfg.vehicle_filter), key=lambda b: b.id)
        if not blueprints:
            raise CarlaError(f"no vehicle blueprint matches {cfg.vehicle_filter!r}")
        bp = rng.choice(blueprints)
        set_blueprint_attribute(bp, "role_name", cfg.role_name)
        if cfg.native_ros:
            set_blueprint_attribute(bp, "ros_name", cfg.role_name)
        points = list(self._rpc("reading spawn points", self.world.get_map).get_spawn_points())
        rng.shuffle(points)
        for point in points:
            vehicle = self._rpc("spawning the ego vehicle", self.world.try_spawn_actor, bp, point)
            if vehicle is not None:
                break
        else:
            raise CarlaError(f"could not spawn {bp.id}: all {len(points)} spawn points are occupied")
        self._spawned_vehicle = True
        log.info("spawned %s (id %d, role_name %r) on autopilot", bp.id, vehicle.id, cfg.role_name)
        self.traffic_manager = self._rpc("opening the Traffic Manager", self.client.get_trafficmanager, cfg.tm_port)
        if cfg.mode == "sync":
            self._rpc("setting the Traffic Manager synchronous", self.traffic_manager.set_synchronous_mode, True)
            self._tm_sync_set = True
        self._rpc("starting the autopilot", vehicle.set_autopilot, True, self.traffic_manager.get_port())
        return vehicle

    def _camera(self, blueprint_id: str, role: str, ros_name: str, buffer: SensorBuffer | None) -> Any:
        cfg, cam, carla = self.cfg, self.cfg.camera, self.carla
        library = self._rpc("reading the blueprint library", self.world.get_blueprint_library)
        bp = library.find(blueprint_id)
        set_blueprint_attribute(bp, "image_size_x", str(cam.width))
        set_blueprint_attribute(bp, "image_size_y", str(cam.height))
        set_blueprint_attribute(bp, "fov", str(cam.fov))
        set_blueprint_attribute(bp, "sensor_tick", "0.0")
        set_blueprint_attribute(bp, "role_name", role)
        if cfg.native_ros:
            set_blueprint_attribute(bp, "ros_name", ros_name)
        transform = carla.Transform(
            carla.Location(x=cam.x, y=cam.y, z=cam.z), carla.Rotation(pitch=cam.pitch, yaw=cam.yaw, roll=cam.roll)
        )
        sensor = self._rpc(f"spawning the {blueprint_id} camera", self.world.spawn_actor, bp, transform,
                           attach_to=self.vehicle)
        self.sensors.append(sensor)
        if cfg.native_ros:
            if not hasattr(sensor, "enable_for_ros"):
                raise CarlaError("this CARLA client has no Sensor.enable_for_ros(): native ROS 2 needs CARLA 0.9.15 or newer")
            self._rpc("enabling native ROS 2 publishing", sensor.enable_for_ros)
        if buffer is not None:
            sensor.listen(buffer)
        return sensor

    def _attach_cameras(self) -> None:
        cfg = self.cfg
        self._camera(SEMANTIC_BLUEPRINT, "svsgan_semantic", cfg.semantic_ros_name,
                     self.semantic if cfg.listen else None)
        if cfg.reference_rgb:
            self._camera(RGB_BLUEPRINT, "svsgan_rgb", cfg.rgb_ros_name, self.rgb if cfg.listen else None)
        if cfg.instance_camera:  # the same pose, resolution and tick as the semantic camera
            self._camera(INSTANCE_BLUEPRINT, "svsgan_instance", cfg.instance_ros_name,
                         self.instance if cfg.listen else None)

    # -- frames ---------------------------------------------------------------------------------
    def tick(self) -> int:
        """Advance the world one step (sync) or wait for the next step (passive); the new frame id."""
        if self.cfg.mode == "sync":
            return int(self._rpc("ticking the world", self.world.tick, float(self.cfg.timeout)))
        snapshot = self._rpc("waiting for the next world tick", self.world.wait_for_tick, float(self.cfg.timeout))
        return int(snapshot.frame)

    def next_frame(self) -> Frame | None:
        """The next semantic frame: in sync mode the one of the tick this call makes (every frame, in
        order); in passive mode the newest one since the last call (bounded latency). None when the
        camera skipped the tick, or when the instance camera (if any) has no image of that tick."""
        timeout = float(self.cfg.timeout)
        if self.cfg.mode == "sync":
            frame = self.tick()
            try:
                item = self.semantic.take(frame, timeout)
            except TimeoutError:
                raise self._no_sensor_data(frame) from None
            if item is None:
                return None
            stamp, bgra = item
        else:
            try:
                frame, stamp, bgra = self.semantic.newest_after(self._last_frame, timeout)
            except TimeoutError:
                raise self._no_sensor_data(self._last_frame + 1) from None
        self._last_frame = frame
        instance = None
        if self.instance is not None:
            try:
                item = self.instance.take(frame, timeout)
            except TimeoutError:
                raise self._no_sensor_data(frame, "instance") from None
            if item is None:
                log.warning("the instance camera has no image of frame %d: frame skipped", frame)
                return None
            instance = item[1]
        return Frame(frame, stamp, bgra, instance_bgra=instance)

    def reference_for(self, frame: Frame) -> np.ndarray | None:
        """The RGB camera's image of the same frame, as HxWx3 RGB (None if it has none)."""
        if self.rgb is None:
            return None
        try:
            item = self.rgb.take(frame.frame, float(self.cfg.timeout))
        except TimeoutError:
            raise self._no_sensor_data(frame.frame, "RGB") from None
        if item is None:
            return None
        return np.ascontiguousarray(item[1][:, :, 2::-1])

    def _no_sensor_data(self, frame: int, camera: str = "semantic") -> CarlaError:
        try:
            self.client.get_server_version()
        except RuntimeError as exc:
            return self._lost(exc, f"waiting for {camera} camera frame {frame}")
        if self.cfg.mode == "passive":
            return CarlaError(
                f"no {camera} camera frame within {self.cfg.timeout:g} s although the server at {self.where} answers: "
                "in passive mode another client must tick the world (or use --mode sync)"
            )
        return CarlaError(f"the server at {self.where} ticked but sent no {camera} camera frame {frame} "
                          f"within {self.cfg.timeout:g} s")

    def frames(self, limit: int = 0) -> Iterator[Frame]:
        count = 0
        while not limit or count < limit:
            frame = self.next_frame()
            if frame is None:
                continue
            count += 1
            yield frame

    # -- teardown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the cameras, restore settings, destroy what this client spawned.

        Each step runs even when an earlier one failed; once the server is known to be lost, the
        remote steps are skipped (each would only wait out the timeout)."""
        steps: list[tuple[str, Callable[[], Any]]] = []
        for sensor in self.sensors:
            steps.append(("stopping a camera", sensor.stop))
        if self._original_settings is not None:
            original = self._original_settings
            steps.append(("restoring the world settings", lambda: self.world.apply_settings(original)))
        if self._tm_sync_set:
            steps.append(("restoring the Traffic Manager mode", lambda: self.traffic_manager.set_synchronous_mode(False)))
        for sensor in self.sensors:
            steps.append(("destroying a camera", sensor.destroy))
        if self._spawned_vehicle and self.vehicle is not None:
            steps.append(("destroying the ego vehicle", self.vehicle.destroy))
        for doing, step in steps:
            if self._server_lost and doing != "stopping a camera":
                log.warning("not %s: the server is lost", doing)
                continue
            try:
                step()
            except RuntimeError as exc:
                self._server_lost = True
                log.warning("failed %s: %s", doing, exc)
            except Exception as exc:  # teardown must go on; the original error matters more
                log.warning("failed %s: %s", doing, exc)
        self.sensors = []
        self._original_settings = None
        self._tm_sync_set = self._spawned_vehicle = False


def set_blueprint_attribute(bp: Any, name: str, value: str) -> None:
    """Set an attribute the server's blueprint must have: a clear error instead of CARLA's IndexError."""
    if not bp.has_attribute(name):
        raise CarlaError(f"blueprint {bp.id} has no attribute {name!r} on this CARLA server")
    bp.set_attribute(name, value)


# ------------------------------------------------------------------------------------------------
# outputs


class Sink(Protocol):
    def clock(self, stamp_ns: int) -> None: ...
    def write(self, frame: Frame, generated_rgb: np.ndarray) -> None: ...
    def close(self) -> None: ...


LABEL_ENCODINGS = ("mono8", "bgra8", "none")


@dataclass
class Topics:
    """Where frames go: generated rgb8, labels (``mono8`` = CARLA tags, ``bgra8`` = CARLA's raw image
    with the tag in red, as CARLA 0.9.16's native ROS 2 publishes it), the instance camera's raw
    ``bgra8`` image (``instances``; '' for none) and /clock."""

    image: str = "/svsgan/hero/generated/image"
    labels: str = "/svsgan/hero/semantic/image"
    labels_encoding: str = "mono8"
    frame_id: str = "hero/svsgan_camera"
    clock: bool = True
    instances: str = ""

    def __post_init__(self) -> None:
        if self.labels_encoding not in LABEL_ENCODINGS:
            raise InputError(f"labels encoding must be one of {', '.join(LABEL_ENCODINGS)}, got {self.labels_encoding!r}")

    def label_image(self, frame: Frame) -> np.ndarray:
        return frame.tags if self.labels_encoding == "mono8" else frame.bgra


def _stamp(stamp_ns: int) -> tuple[int, int]:
    return stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000


class RosSink:
    """Publishes /clock, the labels and the generated frames with rclpy (imported here, lazily)."""

    def __init__(self, topics: Topics, node_name: str = "svsgan_carla"):
        try:
            import rclpy  # noqa: PLC0415 - ROS output only
            from builtin_interfaces.msg import Time  # noqa: PLC0415
            from rosgraph_msgs.msg import Clock  # noqa: PLC0415
            from sensor_msgs.msg import Image  # noqa: PLC0415
        except ImportError as exc:
            raise CarlaError(f"ROS 2 output needs rclpy and sensor_msgs ({exc}): source ROS 2 or `pip install 'svsgan[ros]'`") from None
        self._rclpy, self._Time, self._Clock, self._Image = rclpy, Time, Clock, Image
        self.topics = topics
        self._own_context = not rclpy.ok()
        if self._own_context:
            rclpy.init()
        self.node = rclpy.create_node(node_name)
        self._image_pub = self.node.create_publisher(Image, topics.image, 10)
        self._labels_pub = (self.node.create_publisher(Image, topics.labels, 10)
                            if topics.labels_encoding != "none" else None)
        self._instances_pub = self.node.create_publisher(Image, topics.instances, 10) if topics.instances else None
        self._clock_pub = self.node.create_publisher(Clock, "/clock", 10) if topics.clock else None

    def clock(self, stamp_ns: int) -> None:
        if self._clock_pub is not None:
            sec, nanosec = _stamp(stamp_ns)
            self._clock_pub.publish(self._Clock(clock=self._Time(sec=sec, nanosec=nanosec)))

    def _image(self, frame: Frame, array: np.ndarray, encoding: str):
        msg = self._Image()
        sec, nanosec = _stamp(frame.stamp_ns)
        msg.header.stamp = self._Time(sec=sec, nanosec=nanosec)
        msg.header.frame_id = self.topics.frame_id
        return fill_image(msg, array, encoding)

    def write(self, frame: Frame, generated_rgb: np.ndarray) -> None:
        if self._labels_pub is not None:
            self._labels_pub.publish(self._image(frame, self.topics.label_image(frame), self.topics.labels_encoding))
        if self._instances_pub is not None and frame.instance_bgra is not None:
            self._instances_pub.publish(self._image(frame, frame.instance_bgra, "bgra8"))
        self._image_pub.publish(self._image(frame, generated_rgb, "rgb8"))

    def close(self) -> None:
        self.node.destroy_node()
        if self._own_context and self._rclpy.ok():
            self._rclpy.shutdown()


BAG_STORAGES = ("mcap", "db3")


class BagSink:
    """Records /clock, the labels and the generated frames into a ROS 2 bag (rosbags, no ROS needed).

    Messages are logged at their simulator stamp, so ``ros2 bag play --clock`` replays simulator
    time. Written with ``svsgan_core.io.bags.BagWriter``: under a temporary name, renamed into place when
    closed (also after Ctrl-C, the normal way to end a live recording), so a killed process never
    leaves a bag under the final name.
    """

    def __init__(self, path: str | os.PathLike, topics: Topics, storage: str = "mcap", overwrite: bool = False):
        # bag code (and rosbags) only in bag mode: the live modes stay light
        from rosbags.typesys import Stores, get_typestore

        from .bags import BagWriter

        if storage not in BAG_STORAGES:
            raise InputError(f"bag storage must be one of {', '.join(BAG_STORAGES)}, got {storage!r}")
        self.topics = topics
        self.typestore = ts = get_typestore(Stores.ROS2_JAZZY)
        self.writer = BagWriter(path, storage, overwrite=overwrite)
        self.path = self.writer.dest
        self.count = 0
        self._image_t = "sensor_msgs/msg/Image"
        self._conn_image = self.writer.add_topic(topics.image, self._image_t, ts)
        self._conn_labels = (self.writer.add_topic(topics.labels, self._image_t, ts)
                             if topics.labels_encoding != "none" else None)
        self._conn_instances = self.writer.add_topic(topics.instances, self._image_t, ts) if topics.instances else None
        self._conn_clock = self.writer.add_topic("/clock", "rosgraph_msgs/msg/Clock", ts) if topics.clock else None

    def _time(self, stamp_ns: int):
        sec, nanosec = _stamp(stamp_ns)
        return self.typestore.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)

    def _image(self, frame: Frame, array: np.ndarray, encoding: str) -> bytes:
        types = self.typestore.types
        header = types["std_msgs/msg/Header"](stamp=self._time(frame.stamp_ns), frame_id=self.topics.frame_id)
        msg = types[self._image_t](header=header, height=0, width=0, encoding="", is_bigendian=0, step=0,
                                   data=np.empty(0, np.uint8))
        fill_image(msg, array, encoding)
        return self.typestore.serialize_cdr(msg, self._image_t)

    def clock(self, stamp_ns: int) -> None:
        if self._conn_clock is not None:
            msg = self.typestore.types["rosgraph_msgs/msg/Clock"](clock=self._time(stamp_ns))
            self.writer.write(self._conn_clock, stamp_ns, self.typestore.serialize_cdr(msg, "rosgraph_msgs/msg/Clock"))

    def write(self, frame: Frame, generated_rgb: np.ndarray) -> None:
        if self._conn_labels is not None:
            data = self._image(frame, self.topics.label_image(frame), self.topics.labels_encoding)
            self.writer.write(self._conn_labels, frame.stamp_ns, data)
        if self._conn_instances is not None and frame.instance_bgra is not None:
            self.writer.write(self._conn_instances, frame.stamp_ns, self._image(frame, frame.instance_bgra, "bgra8"))
        self.writer.write(self._conn_image, frame.stamp_ns, self._image(frame, generated_rgb, "rgb8"))
        self.count += 1

    def close(self) -> None:
        self.writer.commit()


# ------------------------------------------------------------------------------------------------
# the loop


@dataclass
class DriveStats:
    frames: int = 0
    sequences: int = 0
    duplicates: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def drive(session: CarlaSession, synthesizer: Any = None, sink: Sink | None = None, frames: int = 0,
          reset_gap_s: float = 1.0, on_frame: Callable[[Frame, DriveStats], None] | None = None) -> DriveStats:
    """Run the frame loop: one generated frame per semantic frame, stamped with simulator time.

    A stamp that goes backwards (world reload) or jumps forward starts a new sequence, with the RGB
    camera's image of that frame as reference when the session has one. Without a synthesizer the
    loop only ticks the world (e.g. for CARLA's native ROS 2 publishers).
    """
    stats = DriveStats()
    start = time.monotonic()
    if synthesizer is None:
        while not frames or stats.frames < frames:
            session.tick()
            stats.frames += 1
        stats.seconds = time.monotonic() - start
        return stats
    decoder = LabelDecoder("carla_raw", target_space=synthesizer.label_space,
                           carla_version=session.label_version)
    timeline = SequenceTimeline(reset_gap_s)
    for frame in session.frames(frames):
        if sink is not None:
            sink.clock(frame.stamp_ns)
        reason = timeline.observe(frame.stamp_ns)
        if timeline.is_duplicate:
            stats.duplicates += 1
            continue
        if reason is not None:
            frame.reference_rgb = session.reference_for(frame)
            synthesizer.reset(reference_image=frame.reference_rgb)
            stats.sequences += 1
            log.info("new sequence (%s) at frame %d, t=%.3f s", reason, frame.frame, frame.stamp_ns / 1e9)
        labels = decoder.decode(frame.bgra, "bgra8")
        if frame.instance_bgra is not None:
            rgb = synthesizer.step(labels, instances=decode_instances(frame.instance_bgra, "bgra8"))
        else:
            rgb = synthesizer.step(labels)
        if sink is not None:
            sink.write(frame, rgb)
        stats.frames += 1
        stats.seconds = time.monotonic() - start
        if on_frame is not None:
            on_frame(frame, stats)
    stats.seconds = time.monotonic() - start
    return stats


__all__ = [
    "BagSink", "CameraSpec", "CarlaConfig", "CarlaError", "CarlaSession", "DriveStats", "Frame", "RosSink",
    "SensorBuffer", "Topics", "drive", "image_to_bgra", "set_blueprint_attribute",
]
