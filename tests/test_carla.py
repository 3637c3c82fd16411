"""The CARLA direct client (`svsgan carla`, svsgan_core/io/carla_client.py).

No CARLA server can run here. The client's logic is tested against an in-process stand-in of the
`carla` module (world, actors, blueprints, sensors, Traffic Manager) that records every attribute
the client touches; those names are then checked against the installed carla 0.9.16 wheel, and the
value types (Transform, Location, Rotation) are the wheel's own classes. The real wheel is also
used directly for the one thing it can do without a server: time out against a dead or silent one.
"""
from __future__ import annotations

import contextlib
import copy
import fnmatch
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

carla = pytest.importorskip("carla")

ROOT = Path(__file__).resolve().parents[1]

from svsgan_core.io.carla_client import (
    BagSink,
    CameraSpec,
    CarlaConfig,
    CarlaError,
    CarlaSession,
    Topics,
    drive,
    image_to_bgra,
)
from svsgan_core.data.labels import get_label_space, map_labels  # noqa: E402
from svsgan_core.io.encoding import decode_instances  # noqa: E402

# Blueprint attributes of the CARLA 0.9.16 (UE4) server. The client wheel holds no blueprint
# definitions (the server makes them), so the names come from CARLA's server source at 0.9.16:
# ActorBlueprintFunctionLibrary.cpp (FillIdAndTags gives every blueprint role_name and ros_name;
# MakeCameraDefinition gives the camera attributes, to the instance-segmentation camera as to the
# semantic one) and Docs/bp_library.md.
CAMERA_ATTRIBUTES_0916 = {
    "role_name", "ros_name", "sensor_tick", "fov", "image_size_x", "image_size_y",
    "lens_circle_falloff", "lens_circle_multiplier", "lens_k", "lens_kcube", "lens_x_size", "lens_y_size",
}
BLUEPRINT_ATTRIBUTES_0916 = {
    "sensor.camera.semantic_segmentation": CAMERA_ATTRIBUTES_0916,
    "sensor.camera.instance_segmentation": CAMERA_ATTRIBUTES_0916,
    "sensor.camera.rgb": CAMERA_ATTRIBUTES_0916 | {
        "bloom_intensity", "blur_amount", "blur_radius", "enable_postprocess_effects", "exposure_mode",
        "fstop", "gamma", "iso", "lens_flare_intensity", "motion_blur_intensity", "shutter_speed",
    },
    "vehicle.tesla.model3": {"role_name", "ros_name", "color", "number_of_wheels", "sticky_control",
                             "terramechanics", "object_type", "generation", "base_type", "has_dynamic_doors",
                             "has_lights", "special_type"},
}
VEHICLE_ATTRIBUTES_0916 = BLUEPRINT_ATTRIBUTES_0916["vehicle.tesla.model3"]


# ------------------------------------------------------------------------------------------------
# the stand-in `carla` module

class Recorder:
    def __init__(self):
        self.used: set[tuple[str, str]] = set()
        self.set_attributes: list[tuple[str, str, str]] = []


class Recorded:
    """Records each public attribute read or written on it, under the real carla class it stands for."""

    REAL = ""

    def __getattribute__(self, name):
        if not name.startswith("_") and name != "REAL":
            object.__getattribute__(self, "_rec").used.add((type(self).REAL, name))
        return object.__getattribute__(self, name)

    def __setattr__(self, name, value):
        if not name.startswith("_"):
            self._rec.used.add((type(self).REAL, name))
        object.__setattr__(self, name, value)


def _timeout_error(seconds, where="127.0.0.1:2000"):
    return RuntimeError(f"time-out of {int(seconds * 1000)}ms while waiting for the simulator, "
                        f"make sure the simulator is ready and connected to {where}")


class FakeSettings(Recorded):
    REAL = "WorldSettings"

    def __init__(self, rec, synchronous_mode=False, fixed_delta_seconds=None, no_rendering_mode=False):
        self._rec = rec
        self._sync, self._delta, self._norender = synchronous_mode, fixed_delta_seconds, no_rendering_mode

    synchronous_mode = property(lambda s: s._sync, lambda s, v: object.__setattr__(s, "_sync", v))
    fixed_delta_seconds = property(lambda s: s._delta, lambda s, v: object.__setattr__(s, "_delta", v))
    no_rendering_mode = property(lambda s: s._norender, lambda s, v: object.__setattr__(s, "_norender", v))

    def _state(self):
        return (self._sync, self._delta, self._norender)


class FakeImage(Recorded):
    REAL = "Image"

    def __init__(self, rec, frame, timestamp, bgra):
        self._rec = rec
        self._frame, self._timestamp, self._bgra = frame, timestamp, bgra

    frame = property(lambda s: s._frame)
    timestamp = property(lambda s: s._timestamp)
    width = property(lambda s: s._bgra.shape[1])
    height = property(lambda s: s._bgra.shape[0])
    raw_data = property(lambda s: s._bgra.tobytes())


class FakeBlueprint(Recorded):
    REAL = "ActorBlueprint"

    def __init__(self, rec, bp_id):
        self._rec, self._id = rec, bp_id
        self._values = {}

    id = property(lambda s: s._id)

    def has_attribute(self, name):
        return name in BLUEPRINT_ATTRIBUTES_0916[self._id]

    def set_attribute(self, name, value):
        if name not in BLUEPRINT_ATTRIBUTES_0916[self._id]:
            raise IndexError(f"ActorBlueprint: no attribute '{name}'")
        assert isinstance(value, str)
        self._rec.set_attributes.append((self._id, name, value))
        self._values[name] = value


class FakeBlueprintLibrary(Recorded, list):
    REAL = "BlueprintLibrary"

    def __init__(self, rec, items):
        list.__init__(self, items)
        self._rec = rec

    def filter(self, pattern):
        return FakeBlueprintLibrary(self._rec, [b for b in list.__iter__(self) if fnmatch.fnmatch(b._id, pattern)])

    def find(self, bp_id):
        for b in list.__iter__(self):
            if b._id == bp_id:
                found = copy.copy(b)
                found._values = dict(b._values)
                return found
        raise IndexError(f"blueprint '{bp_id}' not found")


class FakeActorList(Recorded, list):
    REAL = "ActorList"

    def __init__(self, rec, items):
        list.__init__(self, items)
        self._rec = rec

    def filter(self, pattern):
        return FakeActorList(self._rec, [a for a in list.__iter__(self) if fnmatch.fnmatch(a._type_id, pattern)])


class FakeActor(Recorded):
    REAL = "Actor"

    def __init__(self, server, actor_id, type_id, attributes):
        self._rec, self._server = server.rec, server
        self._id, self._type_id, self._attributes = actor_id, type_id, dict(attributes)
        self._alive = True

    id = property(lambda s: s._id)
    type_id = property(lambda s: s._type_id)
    attributes = property(lambda s: dict(s._attributes))

    def destroy(self):
        self._server.check_alive()
        self._alive = False
        self._server.actors.pop(self._id, None)
        return True


class FakeVehicle(FakeActor):
    REAL = "Vehicle"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._autopilot = None

    def set_autopilot(self, enabled=True, port=8000):
        self._server.check_alive()
        self._autopilot = (enabled, port)


class FakeSensor(FakeActor):
    REAL = "ServerSideSensor"

    def __init__(self, *a, transform=None, parent=None, **kw):
        super().__init__(*a, **kw)
        self._callback = None
        self._transform, self._parent = transform, parent
        self._ros = False

    def listen(self, callback):
        self._callback = callback

    def stop(self):
        self._callback = None

    def is_listening(self):
        return self._callback is not None

    def enable_for_ros(self):
        self._server.check_alive()
        self._ros = True


class FakeSnapshot(Recorded):
    REAL = "WorldSnapshot"

    def __init__(self, rec, frame):
        self._rec, self._frame = rec, frame

    frame = property(lambda s: s._frame)


class FakeMap(Recorded):
    REAL = "Map"

    def __init__(self, server):
        self._rec, self._server = server.rec, server

    def get_spawn_points(self):
        return [carla.Transform(carla.Location(x=10.0 * i, y=2.0, z=0.3), carla.Rotation(yaw=90.0 * i))
                for i in range(self._server.n_spawn_points)]


class FakeTrafficManager(Recorded):
    REAL = "TrafficManager"

    def __init__(self, server, port):
        self._rec, self._server, self._port = server.rec, server, port

    def set_synchronous_mode(self, mode=True):
        self._server.check_alive()
        self._server.tm_sync = bool(mode)

    def get_port(self):
        return self._port


class FakeWorld(Recorded):
    REAL = "World"

    def __init__(self, server):
        self._rec, self._server = server.rec, server

    def get_settings(self):
        self._server.check_alive()
        return copy.copy(self._server.settings)

    def apply_settings(self, settings):
        self._server.check_alive()
        self._server.settings = copy.copy(settings)
        self._server.settings_history.append(settings._state())
        return self._server.frame

    def tick(self, seconds=10.0):
        s = self._server
        s.check_alive(seconds)
        assert s.settings._sync, "tick() on an asynchronous world"
        frame = s.advance()
        if s.die_after_tick:
            s.alive = False
        return frame

    def wait_for_tick(self, seconds=10.0):
        s = self._server
        s.check_alive(seconds)
        with s.tick_cond:
            start = s.frame
            if not s.tick_cond.wait_for(lambda: s.frame > start, timeout=seconds):
                raise _timeout_error(seconds)
            return FakeSnapshot(s.rec, s.frame)

    def get_actors(self, actor_ids=None):
        self._server.check_alive()
        return FakeActorList(self._server.rec, list(self._server.actors.values()))

    def get_blueprint_library(self):
        self._server.check_alive()
        rec = self._server.rec
        return FakeBlueprintLibrary(rec, [FakeBlueprint(rec, i) for i in BLUEPRINT_ATTRIBUTES_0916])

    def get_map(self):
        return FakeMap(self._server)

    def try_spawn_actor(self, blueprint, transform, attach_to=None):
        s = self._server
        s.check_alive()
        assert isinstance(transform, carla.Transform)
        key = (round(transform.location.x, 3), round(transform.location.y, 3))
        if key in s.occupied:
            return None
        s.occupied.add(key)
        return s.add(FakeVehicle, blueprint._id, blueprint._values)

    def spawn_actor(self, blueprint, transform, attach_to=None):
        s = self._server
        s.check_alive()
        assert isinstance(transform, carla.Transform)
        assert attach_to is not None and attach_to._id in s.actors
        return s.add(FakeSensor, blueprint._id, blueprint._values, transform=transform, parent=attach_to)


class FakeClient(Recorded):
    REAL = "Client"

    def __init__(self, server, host, port):
        self._rec, self._server = server.rec, server
        server.clients.append((host, port))

    def set_timeout(self, seconds):
        self._server.client_timeout = seconds

    def get_server_version(self):
        self._server.check_alive()
        return self._server.version

    def get_client_version(self):
        return "0.9.16"

    def get_world(self):
        self._server.check_alive()
        return FakeWorld(self._server)

    def get_trafficmanager(self, client_connection=8000):
        self._server.check_alive()
        self._server.tm_ports.append(client_connection)
        return FakeTrafficManager(self._server, client_connection)


class FakeServer:
    """The simulator's state. Sensors are delivered on a separate thread, as CARLA's client does."""

    def __init__(self, width=64, height=32, version="0.9.16", n_spawn_points=3):
        self.rec = Recorder()
        self.version = version
        self.width, self.height = width, height
        self.settings = FakeSettings(self.rec)
        self.settings_history = []
        self.actors: dict[int, FakeActor] = {}
        self.destroyed: list[int] = []
        self.next_id = 100
        self.frame = 1000
        self.elapsed = 12.5
        self.alive = True
        self.sensors_silent = False
        self.die_after_tick = False
        self.client_timeout = None
        self.tm_sync = False
        self.tm_ports = []
        self.clients = []
        self.occupied = set()
        self.n_spawn_points = n_spawn_points
        self.tick_cond = threading.Condition()
        self.time_jumps: dict[int, float] = {}
        self._deliveries: queue.Queue = queue.Queue()
        threading.Thread(target=self._deliver, daemon=True).start()

    # the stand-in `carla` module
    def module(self):
        server = self

        class Module(Recorded):
            REAL = "<module>"
            Transform, Location, Rotation = carla.Transform, carla.Location, carla.Rotation

            def __init__(self):
                self._rec = server.rec

            def Client(self, host="127.0.0.1", port=2000, worker_threads=0):  # noqa: N802 - carla's name
                return FakeClient(server, host, port)

        return Module()

    def check_alive(self, seconds=None):
        if not self.alive:
            raise _timeout_error(seconds or self.client_timeout or 10.0)

    def add(self, cls, type_id, attributes, **kw):
        self.next_id += 1
        actor = cls(self, self.next_id, type_id, attributes, **kw)
        self.actors[actor._id] = actor
        return actor

    def tags(self, frame):
        """A label image whose tags depend on the frame: every 0.9.16 tag appears."""
        yy, xx = np.mgrid[0:self.height, 0:self.width]
        return ((xx + yy + frame) % 29).astype(np.uint8)

    def rgb(self, frame):
        return np.full((self.height, self.width, 3), frame % 251, np.uint8)

    def object_ids(self, frame):
        """Two cars parked bumper to bumper (one tag, two 16-bit object ids), the rest one object per tag."""
        ids = np.zeros((self.height, self.width), np.uint16)
        ids[8:20, 10:30] = 0x0123 + frame % 7
        ids[8:20, 30:50] = 0x1201 + frame % 7
        return ids

    def instance_image(self, frame):
        """The instance camera as CARLA's server colours it (ATagger::GetActorLabelColor): R = tag,
        G = id & 0xff, B = id >> 8; BGRA bytes as carla.Image.raw_data."""
        tags = self.tags(frame)
        tags[8:20, 10:50] = 14  # car
        ids = self.object_ids(frame)
        return np.dstack([(ids >> 8).astype(np.uint8), (ids & 0xFF).astype(np.uint8), tags,
                          np.full(tags.shape, 255, np.uint8)])

    def advance(self):
        with self.tick_cond:
            self.frame += 1
            self.elapsed = self.time_jumps.get(self.frame, self.elapsed + (self.settings._delta or 0.033))
            frame, elapsed = self.frame, self.elapsed
            self.tick_cond.notify_all()
        if not self.sensors_silent:
            for actor in list(self.actors.values()):
                if isinstance(actor, FakeSensor) and actor._callback is not None:
                    if actor._type_id.endswith("semantic_segmentation"):
                        bgra = np.zeros((self.height, self.width, 4), np.uint8)
                        bgra[:, :, 2] = self.tags(frame)
                        bgra[:, :, 3] = 255
                    elif actor._type_id.endswith("instance_segmentation"):
                        bgra = self.instance_image(frame)
                    else:
                        bgra = np.dstack([self.rgb(frame)[:, :, ::-1], np.full((self.height, self.width), 255, np.uint8)])
                    self._deliveries.put((actor, FakeImage(self.rec, frame, elapsed, bgra)))
        return frame

    def _deliver(self):
        while True:
            actor, image = self._deliveries.get()
            callback = actor._callback
            if callback is not None:
                callback(image)

    def hero(self, role="hero"):
        return self.add(FakeVehicle, "vehicle.tesla.model3", {"role_name": role})


class FakeSynthesizer:
    """Records the streaming calls; frame i of a sequence is filled with i."""

    label_space = get_label_space("cityscapes")

    def __init__(self, fail_at=None):
        self.calls = []
        self.instances = []  # per step: the instances keyword, or "not passed"
        self.fail_at = fail_at
        self.n = 0

    def reset(self, reference_image=None):
        self.calls.append(("reset", None if reference_image is None else reference_image.copy()))
        self.n = 0

    def step(self, labels, **kw):
        if self.fail_at is not None and len([c for c in self.calls if c[0] == "step"]) == self.fail_at:
            raise ValueError("generator failed")
        self.calls.append(("step", labels.copy()))
        self.instances.append(kw["instances"].copy() if "instances" in kw else "not passed")
        self.n += 1
        return np.full(labels.shape + (3,), self.n, np.uint8)


@contextlib.contextmanager
def another_client_ticking(server, period=0.003):
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            server.advance()
            time.sleep(period)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def config(**kw):
    kw.setdefault("camera", CameraSpec(width=64, height=32, fov=70.0, x=1.0, z=2.0, pitch=-5.0))
    # a safety net for the tests that do not test timeouts (those set 0.2-0.5 s): a frame comes within
    # milliseconds of the tick, but a process niced on a loaded machine can wait seconds for a core
    kw.setdefault("timeout", 30.0)
    kw.setdefault("seed", 0)
    return CarlaConfig(**kw)


class ListSink:
    def __init__(self):
        self.clocks, self.frames, self.closed = [], [], False
        self.instance_images = []

    def clock(self, stamp_ns):
        self.clocks.append(stamp_ns)

    def write(self, frame, rgb):
        self.frames.append((frame.frame, frame.stamp_ns, frame.tags.copy(), rgb))
        self.instance_images.append(frame.instance_bgra)

    def close(self):
        self.closed = True


# ------------------------------------------------------------------------------------------------
# the carla API the client uses exists in the 0.9.16 wheel

def _exercise_all_paths(tmp_path):
    """Spawn + RGB + native ROS (sync), existing hero (passive), lost server: the names they touch."""
    used, set_attrs = set(), []
    server = FakeServer()
    with CarlaSession(config(reference_rgb=True, native_ros=True, instance_camera=True), server.module()) as s:
        sink = BagSink(tmp_path / "bag", Topics(instances="/inst"), storage="mcap")
        drive(s, FakeSynthesizer(), sink, frames=2)
        sink.close()
    used |= server.rec.used
    set_attrs += server.rec.set_attributes

    server = FakeServer()
    server.hero()
    with another_client_ticking(server):
        with CarlaSession(config(mode="passive"), server.module()) as s:
            drive(s, FakeSynthesizer(), ListSink(), frames=2)
            drive(s, None, None, frames=1)
    used |= server.rec.used

    server = FakeServer()
    with CarlaSession(config(timeout=0.2), server.module()) as s:
        server.sensors_silent = True
        with pytest.raises(CarlaError):
            s.next_frame()
        server.alive = False
    used |= server.rec.used
    return used, set_attrs


def test_every_carla_name_the_client_uses_exists_in_the_0916_wheel(tmp_path):
    assert carla.Client(port=1).get_client_version() == "0.9.16"
    used, set_attrs = _exercise_all_paths(tmp_path)
    missing = sorted(f"carla.{cls}.{name}" if cls != "<module>" else f"carla.{name}"
                     for cls, name in used
                     if not hasattr(carla if cls == "<module>" else getattr(carla, cls), name))
    assert not missing, f"not in carla {carla.Client(port=1).get_client_version()}: {missing}"
    assert {("World", "tick"), ("World", "apply_settings"), ("ServerSideSensor", "listen"),
            ("ServerSideSensor", "enable_for_ros"), ("Vehicle", "set_autopilot"), ("Image", "raw_data"),
            ("WorldSettings", "fixed_delta_seconds"), ("<module>", "Client")} <= used
    # the blueprint attributes set are those of CARLA 0.9.16's blueprints
    for bp_id, name, value in set_attrs:
        assert name in BLUEPRINT_ATTRIBUTES_0916[bp_id], (bp_id, name)
    for camera in ("sensor.camera.semantic_segmentation", "sensor.camera.instance_segmentation"):
        assert {n for b, n, _ in set_attrs if b == camera} == {
            "image_size_x", "image_size_y", "fov", "sensor_tick", "role_name", "ros_name"}


def test_raw_data_layout_is_the_wheels_bgra_and_tags_sit_in_red():
    stub = Path(carla.__file__).with_name("libcarla.pyi")
    if stub.exists():
        text = stub.read_text()
        image_doc = text[text.index("class Image(SensorData):"):][:600]
        assert "32-bit BGRA" in image_doc and "raw_data" in text
    rec = Recorder()
    bgra = np.zeros((3, 5, 4), np.uint8)
    bgra[:, :, 2] = np.arange(15).reshape(3, 5)
    out = image_to_bgra(FakeImage(rec, 7, 1.0, bgra))
    assert out.shape == (3, 5, 4) and np.array_equal(out[:, :, 2], bgra[:, :, 2])


# ------------------------------------------------------------------------------------------------
# logic against the stand-in world

def test_sync_mode_is_set_up_and_everything_is_restored(tmp_path):
    server = FakeServer()
    server.settings = FakeSettings(server.rec, False, None, True)
    before = server.settings._state()
    with CarlaSession(config(fixed_delta_seconds=0.1), server.module()) as s:
        assert server.settings._state() == (True, 0.1, True)
        assert server.tm_sync and s.vehicle._autopilot == (True, 8000)
        assert server.client_timeout == 30.0
        vehicle_id = s.vehicle.id
        assert len(server.actors) == 2
        drive(s, FakeSynthesizer(), ListSink(), frames=3)
    assert server.settings._state() == before
    assert not server.tm_sync
    assert server.actors == {}, "spawned vehicle and camera must be destroyed"
    assert vehicle_id not in server.actors


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_settings_are_restored_when_the_loop_fails_or_is_interrupted(error):
    server = FakeServer()
    synth = FakeSynthesizer(fail_at=2)
    if error is KeyboardInterrupt:
        def interrupt(labels):
            raise KeyboardInterrupt
        synth.step = interrupt
    with pytest.raises(error):
        with CarlaSession(config(), server.module()) as s:
            drive(s, synth, ListSink(), frames=10)
    assert server.settings._state() == (False, None, False)
    assert not server.tm_sync and server.actors == {}


def test_setup_failure_after_sync_switch_restores_too():
    server = FakeServer(n_spawn_points=0)
    with pytest.raises(CarlaError, match="spawn points"):
        CarlaSession(config(), server.module()).__enter__()
    assert server.settings._state() == (False, None, False)
    assert server.settings_history[-1] == (False, None, False)


def test_existing_hero_is_used_and_left_alone():
    server = FakeServer()
    other = server.add(FakeVehicle, "vehicle.tesla.model3", {"role_name": "autopilot"})
    hero = server.hero()
    with CarlaSession(config(), server.module()) as s:
        assert s.vehicle is hero
        sensor = server.actors[max(server.actors)]
        assert sensor._parent is hero
        t = sensor._transform
        assert (t.location.x, t.location.z, t.rotation.pitch) == (1.0, 2.0, -5.0)
        drive(s, FakeSynthesizer(), ListSink(), frames=1)
    assert hero._autopilot is None and server.tm_ports == []
    assert set(server.actors) == {other.id, hero.id}


def test_vehicle_is_spawned_when_no_hero_and_refused_with_no_spawn():
    server = FakeServer()
    server.hero(role="someone_else")
    with CarlaSession(config(role_name="ego"), server.module()) as s:
        assert s.vehicle.attributes["role_name"] == "ego"
        assert ("vehicle.tesla.model3", "role_name", "ego") in server.rec.set_attributes
    server = FakeServer()
    with pytest.raises(CarlaError, match="no vehicle with role_name 'hero'"):
        with CarlaSession(config(spawn=False), server.module()):
            pass
    assert server.settings._state() == (False, None, False)


def test_camera_blueprint_gets_resolution_fov_and_native_ros_names():
    server = FakeServer()
    with CarlaSession(config(native_ros=True, reference_rgb=True), server.module()) as s:
        semantic, rgb = s.sensors
        assert semantic._ros and rgb._ros
        assert semantic.attributes["image_size_x"] == "64" and semantic.attributes["image_size_y"] == "32"
        assert float(semantic.attributes["fov"]) == 70.0
        assert semantic.attributes["ros_name"] == "semantic_segmentation" and rgb.attributes["ros_name"] == "rgb"
        assert s.vehicle.attributes["ros_name"] == "hero"


def test_one_generated_frame_per_semantic_frame_stamped_with_simulator_time():
    server = FakeServer()
    synth, sink = FakeSynthesizer(), ListSink()
    with CarlaSession(config(fixed_delta_seconds=0.05), server.module()) as s:
        stats = drive(s, synth, sink, frames=5)
    assert stats.frames == 5 and stats.sequences == 1
    steps = [c[1] for c in synth.calls if c[0] == "step"]
    assert len(steps) == len(sink.frames) == len(sink.clocks) == 5
    frames = [f[0] for f in sink.frames]
    assert frames == list(range(1001, 1006))
    expected_ns = [int(round((12.5 + 0.05 * (i + 1)) * 1e9)) for i in range(5)]
    assert [f[1] for f in sink.frames] == expected_ns == sink.clocks
    for (frame, _, tags, rgb), labels, n in zip(sink.frames, steps, range(1, 6)):
        assert np.array_equal(tags, server.tags(frame))
        assert np.array_equal(labels, map_labels(server.tags(frame), "carla", "cityscapes"))
        assert rgb.shape == (32, 64, 3) and (rgb == n).all()


def test_instance_camera_sits_beside_the_semantic_one_and_its_ids_reach_the_generator():
    server = FakeServer()
    synth, sink = FakeSynthesizer(), ListSink()
    with CarlaSession(config(instance_camera=True, native_ros=True), server.module()) as s:
        semantic, instance = s.sensors
        assert instance._type_id == "sensor.camera.instance_segmentation" and instance._parent is s.vehicle
        t0, t1 = semantic._transform, instance._transform
        assert (t1.location.x, t1.location.y, t1.location.z, t1.rotation.pitch, t1.rotation.yaw, t1.rotation.roll) == (
            t0.location.x, t0.location.y, t0.location.z, t0.rotation.pitch, t0.rotation.yaw, t0.rotation.roll)
        same = ("image_size_x", "image_size_y", "fov", "sensor_tick")
        assert [instance.attributes[k] for k in same] == [semantic.attributes[k] for k in same]
        assert instance.attributes["ros_name"] == "instance_segmentation" and instance._ros
        drive(s, synth, sink, frames=3)
    assert [f[0] for f in sink.frames] == [1001, 1002, 1003]
    for (frame, _, tags, _), image, ids in zip(sink.frames, sink.instance_images, synth.instances):
        assert np.array_equal(image, server.instance_image(frame))  # the instance image of the same tick
        assert np.array_equal(ids, decode_instances(server.instance_image(frame), "bgra8"))
        assert np.array_equal(ids & 0xFFFF, server.object_ids(frame))  # CARLA's object id = G + 256 B
        assert ids[10, 29] != ids[10, 30] and (ids[10, 29] >> 16) == (ids[10, 30] >> 16) == 14  # two cars
    assert server.actors == {}


def test_without_the_instance_camera_the_generator_is_called_as_before():
    server = FakeServer()
    synth, sink = FakeSynthesizer(), ListSink()
    with CarlaSession(config(), server.module()) as s:
        assert len(s.sensors) == 1
        drive(s, synth, sink, frames=2)
    assert synth.instances == ["not passed"] * 2 and sink.instance_images == [None, None]


def test_passive_mode_pairs_each_frame_with_the_instance_image_of_its_tick():
    server = FakeServer()
    server.hero()
    synth, sink = FakeSynthesizer(), ListSink()
    with another_client_ticking(server):
        with CarlaSession(config(mode="passive", instance_camera=True), server.module()) as s:
            drive(s, synth, sink, frames=3)
    assert len(sink.frames) == 3
    for (frame, _, _, _), image in zip(sink.frames, sink.instance_images):
        assert np.array_equal(image, server.instance_image(frame))


def test_world_reload_starts_a_new_sequence_from_the_rgb_reference():
    server = FakeServer()
    server.time_jumps = {1003: 0.05}  # CARLA reloaded: the clock restarts
    synth = FakeSynthesizer()
    with CarlaSession(config(reference_rgb=True), server.module()) as s:
        stats = drive(s, synth, ListSink(), frames=4)
    assert stats.sequences == 2
    resets = [i for i, c in enumerate(synth.calls) if c[0] == "reset"]
    assert resets == [0, 3]
    assert np.array_equal(synth.calls[0][1], server.rgb(1001))
    assert np.array_equal(synth.calls[3][1], server.rgb(1003))


def test_legacy_server_tags_are_read_with_the_legacy_numbering():
    server = FakeServer(version="0.9.13")
    synth = FakeSynthesizer()
    server.tags = lambda frame: np.full((server.height, server.width), 7, np.uint8)  # legacy 7 = road
    with CarlaSession(config(), server.module()) as s:
        drive(s, synth, ListSink(), frames=1)
    assert (synth.calls[1][1] == 0).all()  # Cityscapes trainId 0 = road


def test_passive_mode_leaves_settings_alone_and_processes_newest_frames():
    server = FakeServer()
    server.hero()
    sink = ListSink()
    with another_client_ticking(server):
        with CarlaSession(config(mode="passive"), server.module()) as s:
            drive(s, FakeSynthesizer(), sink, frames=4)
    assert server.settings_history == []
    frames = [f[0] for f in sink.frames]
    assert len(frames) == 4 and frames == sorted(set(frames))
    assert all(np.array_equal(f[2], server.tags(f[0])) for f in sink.frames)


def test_bag_output_holds_clock_labels_and_frames_at_simulator_time(tmp_path):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    server = FakeServer()
    out = tmp_path / "drive"
    with CarlaSession(config(instance_camera=True), server.module()) as s:
        sink = BagSink(out, Topics(instances="/svsgan/hero/instance/image"), storage="mcap")
        try:
            drive(s, FakeSynthesizer(), sink, frames=3)
        finally:
            sink.close()
    assert [p.name for p in tmp_path.iterdir()] == ["drive"], "no partial bag may be left beside it"
    with AnyReader([out], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        msgs = {}
        for conn, t, raw in reader.messages():
            msgs.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    assert {k: len(v) for k, v in msgs.items()} == {
        "/clock": 3, "/svsgan/hero/semantic/image": 3, "/svsgan/hero/generated/image": 3,
        "/svsgan/hero/instance/image": 3}
    for (t, inst), i in zip(msgs["/svsgan/hero/instance/image"], range(3)):  # CARLA's raw image, as recorded
        assert inst.encoding == "bgra8" and t == inst.header.stamp.sec * 10**9 + inst.header.stamp.nanosec
        assert np.array_equal(inst.data.reshape(32, 64, 4), server.instance_image(1001 + i))
    for (t, img), (_, lab), i in zip(msgs["/svsgan/hero/generated/image"], msgs["/svsgan/hero/semantic/image"], range(3)):
        stamp = img.header.stamp.sec * 10**9 + img.header.stamp.nanosec
        assert t == stamp == int(round((12.5 + 0.05 * (i + 1)) * 1e9))
        assert img.encoding == "rgb8" and lab.encoding == "mono8" and img.header.frame_id == "hero/svsgan_camera"
        assert np.array_equal(lab.data.reshape(32, 64), server.tags(1001 + i))
    with pytest.raises(Exception, match="exists"):
        BagSink(out, Topics())


def test_cli_with_a_real_checkpoint_records_a_bag_and_restores_the_world(tmp_path, monkeypatch):
    import torch
    from rosbags.highlevel import AnyReader

    import svsgan_core.io.carla_client as carla_client
    from svsgan_core.runtime.checkpoint import save_checkpoint
    from svsgan_core.cli import main
    from svsgan_core.models.config import preset
    from svsgan_core.models import SVSGenerator

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", SVSGenerator(preset("tiny")))
    server = FakeServer()
    monkeypatch.setattr(carla_client, "import_carla", server.module)
    out = tmp_path / "rec"
    torch.set_num_threads(2)  # torch's own default on a 2-core machine; the client runs one, as every command
    rc = main(["carla", "--checkpoint", str(ckpt), "--output", "bag", "--bag", str(out), "--frames", "2",
               "--width", "64", "--height", "32", "--pose", "1,0,2", "--reference-rgb", "--format", "db3",
               "--instance-camera"])
    assert rc == 0 and torch.get_num_threads() == 1
    assert server.settings._state() == (False, None, False) and server.actors == {}
    with AnyReader([out]) as reader:
        frames = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                  if c.topic == "/svsgan/hero/generated/image"]
        instances = [c.topic for c, _, _ in reader.messages() if c.topic == "/svsgan/hero/instance/image"]
    assert len(instances) == 2  # the real synthesizer took each frame's instance ids
    assert len(frames) == 2 and all((f.width, f.height, f.encoding) == (64, 32, "rgb8") for f in frames)
    assert np.array_equal(frames[0].data.reshape(32, 64, 3), server.rgb(1001)), "the RGB reference starts the sequence"


# ------------------------------------------------------------------------------------------------
# a lost server is a clear error within the timeout, never a hang

def test_server_lost_during_tick_is_a_clear_error_and_teardown_does_not_wait():
    server = FakeServer()
    with pytest.raises(CarlaError, match="lost the CARLA server at 127.0.0.1:2000 while ticking"):
        with CarlaSession(config(), server.module()) as s:
            drive(s, FakeSynthesizer(), ListSink(), frames=1)
            server.alive = False
            drive(s, FakeSynthesizer(), ListSink(), frames=1)


@pytest.mark.parametrize("alive", [True, False])
def test_camera_silence_is_an_error_within_the_timeout(alive):
    server = FakeServer()
    with CarlaSession(config(timeout=0.3), server.module()) as s:
        server.sensors_silent = True
        server.die_after_tick = not alive
        if not alive:
            with pytest.raises(CarlaError, match="lost the CARLA server"):
                s.next_frame()
            return
        waits = []
        take = s.semantic.take
        s.semantic.take = lambda frame, timeout: waits.append(timeout) or take(frame, timeout)
        with pytest.raises(CarlaError, match="sent no semantic camera frame"):
            s.next_frame()
        assert waits == [0.3]  # the configured timeout bounds the wait, whatever the machine's speed


def test_passive_mode_without_a_ticking_client_says_so():
    server = FakeServer()
    with CarlaSession(config(mode="passive", timeout=0.2), server.module()) as s:
        with pytest.raises(CarlaError, match="another client must tick"):
            s.next_frame()


def _silent_server():
    """A TCP port that accepts connections and never answers, like a hung simulator."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1], lambda: (stop.set(), [c.close() for c in conns], srv.close())


@pytest.mark.parametrize("kind", ["closed", "silent"])
def test_real_carla_client_against_no_server_fails_clearly_within_the_timeout(kind):
    if kind == "silent":
        port, close = _silent_server()
    else:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        close = lambda: None  # noqa: E731
    try:
        errors = []

        def connect():
            try:
                CarlaSession(config(port=port, timeout=0.5)).__enter__()
            except CarlaError as exc:
                errors.append(str(exc))
        worker = threading.Thread(target=connect, daemon=True)
        worker.start()
        worker.join(120)  # a safety net only: the client's own 0.5 s timeout must end it
        assert not worker.is_alive(), "the client hung instead of timing out"
        assert len(errors) == 1 and f"lost the CARLA server at 127.0.0.1:{port}" in errors[0], errors
    finally:
        close()


def test_cli_reports_a_dead_server_without_a_traceback():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.run([sys.executable, "-m", "svsgan_core.cli", "carla", "--port", str(port), "--timeout", "0.5",
                           "--output", "none"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1
    assert f"lost the CARLA server at 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "svsgan_core.cli", "carla", "--output", "bag", "--checkpoint", "x"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1 and "--output bag needs --bag" in proc.stderr


def test_ros_carla_and_bag_modules_are_imported_only_by_the_mode_that_needs_them():
    code = ("import sys, svsgan_core.io.carla_client, svsgan_core.commands.carla; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'rclpy', 'sensor_msgs', 'rosgraph_msgs', 'builtin_interfaces', 'rosbags', 'carla', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


# ------------------------------------------------------------------------------------------------
# ROS 2 output over real DDS (one process publishes, another subscribes)

ROS_PUBLISHER = r"""
import sys, time
import numpy as np
from svsgan_core.io.carla_client import Frame, RosSink, Topics
topics = Topics(labels_encoding="bgra8")
sink = RosSink(topics)
# volatile topics drop what is published before a subscriber is matched: wait for it, then keep publishing
# until the test ends this process (the deadline is a safety net, not a duration)
deadline = time.monotonic() + 300
while any(sink.node.count_subscribers(t) == 0 for t in (topics.image, topics.labels, "/clock")):
    if time.monotonic() > deadline:
        sys.exit("no subscriber came")
    time.sleep(0.02)
print("matched", flush=True)
bgra = np.zeros((4, 6, 4), np.uint8); bgra[:, :, 2] = 11
i = 0
while time.monotonic() < deadline:
    stamp = 5_000_000_000 + i * 50_000_000
    sink.clock(stamp)
    sink.write(Frame(i, stamp, bgra), np.full((4, 6, 3), i % 256, np.uint8))
    i += 1
    time.sleep(0.02)
sink.close()
"""

ROS_SUBSCRIBER = r"""
import time
import rclpy
from sensor_msgs.msg import Image
from rosgraph_msgs.msg import Clock
rclpy.init()
node = rclpy.create_node("check")
got = {}
def keep(topic):
    return lambda m: got.setdefault(topic, m)
node.create_subscription(Image, "/svsgan/hero/generated/image", keep("image"), 10)
node.create_subscription(Image, "/svsgan/hero/semantic/image", keep("labels"), 10)
node.create_subscription(Clock, "/clock", keep("clock"), 10)
end = time.monotonic() + 300  # a safety net: the publisher sends until this process has one of each
while len(got) < 3 and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
img, lab, clk = got["image"], got["labels"], got["clock"]
s = img.header.stamp
assert (s.sec * 10**9 + s.nanosec - 5_000_000_000) % 50_000_000 == 0, s
assert img.encoding == "rgb8" and (img.width, img.height) == (6, 4) and img.header.frame_id == "hero/svsgan_camera"
assert lab.encoding == "bgra8" and bytes(lab.data)[2] == 11
assert clk.clock.sec >= 5
print("OK")
"""


@pytest.mark.ros
def test_ros_output_publishes_clock_labels_and_frames_with_sim_stamps(tmp_path):
    """Two processes over real DDS, isolated like tests/test_ros_node.py's (own network namespace where
    allowed, own domain). No fixed publishing window: the publisher starts once the subscriber is matched
    and goes on until the subscriber has its messages, however slowly either process starts."""
    pytest.importorskip("rclpy")
    from test_ros_node import RosEnv

    ros = RosEnv(tmp_path)
    try:
        sub = ros.spawn([sys.executable, "-c", ROS_SUBSCRIBER], "subscriber")
        pub = ros.spawn([sys.executable, "-c", ROS_PUBLISHER], "publisher")
        try:
            code = sub.popen.wait(360)  # a safety net; the subscriber's own one is 300 s
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0 and "OK" in sub.output(), f"subscriber:\n{sub.output()}\npublisher:\n{pub.output()}"
        assert "matched" in pub.output()
    finally:
        ros.close()
