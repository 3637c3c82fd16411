"""The generator node as a real process over real DDS (rclpy from the ros-jazzy-* wheels, Fast DDS).

Each process test gets its own network namespace (`unshare -n`, loopback only; where that is not
allowed the processes share the host's loopback) and its own ROS_DOMAIN_ID, with discovery limited
to localhost. The node is started by its console entry point with a parameters file; a driver process
(tests/ros_driver.py) publishes label frames and /clock and reports what the node publishes. Every
wait is on an event (a message, a log line, a process exit) with a timeout.
"""
from __future__ import annotations

import ast
import base64
import importlib.util
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from svsgan_core.io import rosio
from svsgan_core.io.encoding import encode_palette

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'ros2_ws' / 'src' / 'svs_gan_ros'))
from svs_gan_ros.params import PARAMS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / 'ros2_ws' / 'src' / 'svs_gan_ros'
DRIVER = Path(__file__).with_name('ros_driver.py')
GATED_NODE = Path(__file__).with_name('gated_node.py')  # the node with a model the test steps
HAVE_RCLPY = importlib.util.find_spec('rclpy') is not None
needs_ros = pytest.mark.skipif(not HAVE_RCLPY, reason='rclpy (ros-jazzy-rclpy wheels) is not installed')
pytestmark = pytest.mark.ros

H, W = 40, 72  # not the model's 64x128: the node must resize and give back the input's size
T0 = 1_000_000_000  # stamps in ns
_DOMAINS = itertools.count(10 + os.getpid() % 60)


# -- processes ------------------------------------------------------------------------------------------

class Proc:
    """A child process whose merged output is collected line by line, to wait on."""

    def __init__(self, argv, env, name):
        self.name = name
        self.popen = subprocess.Popen(argv, env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self.done = False
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.popen.stdout:
            with self.cond:
                self.lines.append(line.rstrip('\n'))
                self.cond.notify_all()
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def output(self) -> str:
        with self.cond:
            return '\n'.join(self.lines)

    def wait_for(self, predicate, timeout, what):
        """The first line (or JSON event, for dicts) that satisfies predicate; fails after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    item = _event(line)
                    if item is not None and predicate(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.done:
                    raise AssertionError(f'{self.name}: no {what} within {timeout:.0f} s '
                                         f'(exit code {self.popen.poll()}); output:\n' + '\n'.join(self.lines[-40:]))
                self.cond.wait(min(remaining, 0.5))

    def events(self, **match) -> list[dict]:
        with self.cond:
            items = [_event(line) for line in self.lines]
        return [e for e in items if isinstance(e, dict) and all(e.get(k) == v for k, v in match.items())]

    def send(self, **command) -> None:
        self.popen.stdin.write(json.dumps(command) + '\n')
        self.popen.stdin.flush()

    def interrupt(self, timeout=30.0) -> int:
        """SIGINT, as Ctrl-C or `ros2 launch` sends it; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise AssertionError(f'{self.name} did not exit within {timeout} s of SIGINT:\n{self.output()}')

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


def _event(line: str):
    if line.startswith('{'):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return line
    return line


class RosEnv:
    """One test's isolated ROS graph: a network namespace (where allowed) and a domain id."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs: list[Proc] = []
        self.holder = None
        self.prefix: list[str] = []
        if os.geteuid() == 0 and shutil.which('unshare') and shutil.which('nsenter') and shutil.which('ip'):
            holder = subprocess.Popen(['unshare', '-n', 'sh', '-c', 'ip link set lo up && echo up && exec sleep 3600'],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if holder.stdout.readline().strip() == 'up':
                self.holder = holder
                self.prefix = ['nsenter', f'--net=/proc/{holder.pid}/ns/net', '--']
            else:
                holder.kill()
                holder.wait()
        self.isolated = self.holder is not None
        env = {k: v for k, v in os.environ.items()
               if k not in ('ROS_LOCALHOST_ONLY', 'ROS_STATIC_PEERS', 'ROS_DISCOVERY_SERVER')}
        env.update(ROS_DOMAIN_ID=str(next(_DOMAINS)), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
                   PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0',
                   PYTHONPATH=os.pathsep.join([str(PKG), str(REPO), env.get('PYTHONPATH', '')]).rstrip(os.pathsep))
        self.env = env

    def spawn(self, argv, name) -> Proc:
        proc = Proc(self.prefix + argv, self.env, name)
        self.procs.append(proc)
        return proc

    def node(self, params: dict, gated: bool = False) -> Proc:
        path = self.tmp_path / 'params.yaml'
        path.write_text(yaml.safe_dump({'/**': {'ros__parameters': params}}))
        exe = [sys.executable, str(GATED_NODE)] if gated else [node_executable()]
        return self.spawn(exe + ['--ros-args', '--params-file', str(path),
                           '-p', 'use_sim_time:=true'], 'generator_node')

    def driver(self, publishers, subscriptions) -> Proc:
        config = json.dumps({'publishers': publishers, 'subscriptions': subscriptions})
        return self.spawn([sys.executable, str(DRIVER), config], 'driver')

    def close(self):
        """SIGINT first, so each process's Fast DDS removes its shared-memory segments from /dev/shm
        (a killed one leaves them behind, run after run); SIGKILL what is still up after 10 s."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.popen.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            proc.kill()
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()


def node_executable() -> str:
    """The console script of this interpreter's environment (`pip install -e ros2_ws/src/svs_gan_ros`)."""
    exe = Path(sysconfig.get_path('scripts')) / 'generator_node'
    if exe.exists():
        return str(exe)
    found = shutil.which('generator_node')
    if not found:
        pytest.fail('generator_node is not installed: run `pip install -e ros2_ws/src/svs_gan_ros`')
    return found


@pytest.fixture()
def ros(tmp_path):
    env = RosEnv(tmp_path)
    yield env
    env.close()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    import torch

    from svsgan_core.runtime.checkpoint import save_checkpoint
    from svsgan_core.models.config import preset
    from svsgan_core.models import SVSGenerator

    torch.manual_seed(0)
    return str(save_checkpoint(tmp_path_factory.mktemp('ros') / 'tiny', SVSGenerator(preset('tiny'))))


def base_params(checkpoint, **over):
    params = dict(checkpoint=checkpoint, mode='lossless', status_period_s=0.3,
                  log_throttle_s=30.0, label_encoding='ids')
    params.update(over)
    return params


def start(ros, params, publishers, subscriptions, timeout=120, gated=False):
    """Node and driver started together; returns once every topic is matched both ways."""
    node = ros.node(params, gated)
    driver = ros.driver(publishers, subscriptions)
    node.wait_for(lambda line: isinstance(line, str) and '] [svs_gan_generator]: ready:' in line, timeout,
                  'ready log line')
    driver.wait_for(lambda e: isinstance(e, dict) and e.get('event') == 'ready', timeout, 'driver ready')
    driver.send(op='wait_matched', timeout=30)
    matched = driver.wait_for(lambda e: isinstance(e, dict) and e.get('event') == 'matched', 40, 'matching')
    assert matched['ok'], f"topics not matched: {matched['missing']}\n{node.output()}"
    return node, driver


def assert_clean_exit(node: Proc, timeout=30.0, interrupted=False):
    """SIGINT (unless the test already sent it), then exit code 0 and no traceback."""
    code = node.popen.wait(timeout) if interrupted else node.interrupt(timeout)
    out = node.output()
    assert code == 0, f'exit code {code}:\n{out}'
    assert 'Traceback' not in out and 'Exception' not in out, out


# -- synthetic semantic sequences -------------------------------------------------------------------

TRAIN_TO_TAG = {0: 1, 2: 3, 8: 9, 10: 11, 13: 14}  # Cityscapes trainId -> CARLA 0.9.14+ tag


def scene(k: int) -> np.ndarray:
    """A street in Cityscapes trainIds: sky, buildings, a tree, road, and a car driving right."""
    ids = np.zeros((H, W), np.uint8)
    ids[:12] = 10
    ids[12:22] = 2
    ids[8:22, 50:60] = 8
    x = 4 + 6 * k
    ids[18:30, x:x + 18] = 13
    return ids


def tags(ids: np.ndarray) -> np.ndarray:
    out = np.zeros_like(ids)
    for train, tag in TRAIN_TO_TAG.items():
        out[ids == train] = tag
    return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_msg(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str, **over) -> dict:
    h, w = array.shape[:2]
    data = np.ascontiguousarray(array).tobytes()
    msg = dict(height=h, width=w, encoding=encoding, step=len(data) // h, data=b64(data), stamp_ns=stamp_ns,
               frame_id=frame_id)
    msg.update(over)
    return msg


def ids_msg(k, stamp_ns, frame_id='cam_ids', **over):
    return image_msg(scene(k), over.pop('encoding', 'mono8'), stamp_ns, frame_id, **over)


def palette_msg(k, stamp_ns, frame_id='cam_palette'):
    rgb = encode_palette(tags(scene(k)), 'carla')  # carla-ros-bridge: bgra8, CityScapesPalette
    bgra = np.dstack([rgb[..., ::-1], np.full((H, W), 255, np.uint8)])
    return image_msg(bgra, 'bgra8', stamp_ns, frame_id)


def raw_msg(k, stamp_ns, frame_id='cam_raw'):
    bgra = np.zeros((H, W, 4), np.uint8)  # CARLA raw: the tag in the red channel
    bgra[..., 2] = tags(scene(k))
    bgra[..., 3] = 255
    return image_msg(bgra, 'bgra8', stamp_ns, frame_id)


def png_msg(k, stamp_ns, frame_id='cam_png'):
    _, data = rosio.compress(scene(k), 'png')
    return dict(format='png', data=b64(data), stamp_ns=stamp_ns, frame_id=frame_id)


def offline_frames(checkpoint, n):
    """The same sequence through VideoSynthesizer in this process (one thread, like the node's)."""
    import torch

    from svsgan_core.runtime.synthesizer import VideoSynthesizer
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        synth = VideoSynthesizer.from_checkpoint(checkpoint)
        return [synth.step(scene(k)) for k in range(n)]
    finally:
        torch.set_num_threads(threads)


def pixels(event) -> np.ndarray:
    return np.frombuffer(base64.b64decode(event['data']), np.uint8).reshape(event['height'], event['width'], 3)


def outputs(driver, topic):
    return driver.events(event='msg', topic=topic)


def wait_count(driver, topic, n, timeout=90):
    driver.wait_for(lambda e: isinstance(e, dict) and len(outputs(driver, topic)) >= n, timeout,
                    f'{n} messages on {topic}')


def wait_status(driver, predicate, timeout=30, what='status'):
    def ok(e):
        return isinstance(e, dict) and e.get('topic') == '/svs_gan_generator/status' and predicate(json.loads(e['data']))
    return json.loads(driver.wait_for(ok, timeout, what)['data'])


# -- tests ----------------------------------------------------------------------------------------------

@needs_ros
def test_lossless_every_input_encoding_one_frame_per_input_with_its_header(ros, checkpoint):
    cams = {  # input topic, encoding, message maker, output topic
        'ids': ('/cam_ids/image', 'ids', ids_msg, '/gen/ids/image'),
        'palette': ('/cam_palette/image', 'carla_palette', palette_msg, '/gen/palette/image'),
        'raw': ('/cam_raw/image', 'carla_raw', raw_msg, '/gen/raw/image'),
        'png': ('/cam_png/image/compressed', 'ids', png_msg, '/gen/png/image'),
    }
    params = base_params(checkpoint, input_topics=[c[0] for c in cams.values()],
                         output_topics=[c[3] for c in cams.values()], label_encodings=[c[1] for c in cams.values()],
                         publish_compressed=True, publish_camera_info=True)
    publishers = [[c[0], 'CompressedImage' if c[0].endswith('/compressed') else 'Image', 'reliable']
                  for c in cams.values()] + [['/cam_ids/camera_info', 'CameraInfo', 'reliable']]
    subscriptions = [[c[3], 'Image'] for c in cams.values()] + [
        ['/gen/ids/image/compressed', 'CompressedImage'], ['/gen/ids/camera_info', 'CameraInfo'],
        ['/svs_gan_generator/status', 'String']]
    node, driver = start(ros, params, publishers, subscriptions)

    # `ros2 param dump` / `ros2 param get`: every parameter listed and set, the left-out list as []
    driver.send(op='parameters', node='/svs_gan_generator')
    got = driver.wait_for(lambda e: isinstance(e, dict) and e.get('event') == 'parameters', 60, 'the parameters')
    values = got.get('values', {})
    assert {p.name for p in PARAMS} | {'use_sim_time'} <= set(values), got
    assert not [name for name, (kind, _) in values.items() if kind == 'NOT_SET'], values
    assert values['label_encodings'] == ['STRING_ARRAY', [c[1] for c in cams.values()]]
    assert values['reference_topics'] == ['STRING_ARRAY', []]
    assert values['num_threads'] == ['INTEGER', 1] and values['use_sim_time'] == ['BOOL', True]  # num_threads by default

    driver.send(op='publish', topic='/cam_ids/camera_info', msg=dict(stamp_ns=T0, height=H, width=W, clock=False))
    n = 4
    stamps = [T0 + k * 100_000_000 for k in range(n)]
    for k, stamp in enumerate(stamps):
        for name, (topic, _, make, _) in cams.items():
            driver.send(op='publish', topic=topic, msg=make(k, stamp))
    for _, _, _, out in cams.values():
        wait_count(driver, out, n)
    status = wait_status(driver, lambda s: all(c['published'] == n and c['pending'] == 0 for c in s['cameras'])
                         and s['now_ns'] == stamps[-1], what='status after the last frame on the sim clock')
    assert all(c['received'] == n and c['dropped_bad'] == 0 for c in status['cameras'])

    expected = offline_frames(checkpoint, n)
    for name, (_, _, _, out) in cams.items():
        got = outputs(driver, out)
        assert len(got) == n, name  # exactly one per input
        assert [e['stamp_ns'] for e in got] == stamps, name
        assert {e['frame_id'] for e in got} == {f'cam_{name}'}
        assert all((e['height'], e['width'], e['encoding'], e['step']) == (H, W, 'rgb8', 3 * W) for e in got)
        for k, e in enumerate(got):  # the same scene through every encoding gives the model's frames, in order
            diff = np.abs(pixels(e).astype(int) - expected[k])
            assert diff.mean() < 1.0, (name, k, diff.mean())
    jpeg = outputs(driver, '/gen/ids/image/compressed')
    assert [e['stamp_ns'] for e in jpeg] == stamps and jpeg[0]['format'] == 'rgb8; jpeg compressed bgr8'
    info = outputs(driver, '/gen/ids/camera_info')
    assert info and info[-1]['stamp_ns'] == stamps[-1] and (info[-1]['height'], info[-1]['width']) == (H, W)
    assert_clean_exit(node)


@needs_ros
def test_backward_stamp_gap_and_reference_image_start_new_sequences(ros, checkpoint):
    params = base_params(checkpoint, input_topics=['/seq/image', '/refcam/labels'],
                         output_topics=['/seq/gen', '/refcam/gen'], reference_topics=['', '/refcam/rgb'],
                         reset_gap_s=1.0)
    node, driver = start(ros, params, [['/seq/image', 'Image', 'reliable'], ['/refcam/labels', 'Image', 'reliable'],
                                       ['/refcam/rgb', 'Image', 'reliable']],
                         [['/seq/gen', 'Image'], ['/refcam/gen', 'Image']])
    sequence = [(0, 1.0), (1, 1.1), (0, 1.2), (0, 0.5), (1, 0.6), (0, 5.0)]
    for k, t in sequence:
        driver.send(op='publish', topic='/seq/image', msg=ids_msg(k, int(t * 1e9)))
    wait_count(driver, '/seq/gen', len(sequence))
    frames = {e['stamp_ns'] / 1e9: e['sha'] for e in outputs(driver, '/seq/gen')}
    assert frames[1.2] != frames[1.0]  # the same labels mid-sequence: warped from the previous frame
    assert frames[0.5] == frames[1.0]  # backward: first-frame mode again, the very same picture
    assert frames[5.0] == frames[1.0]  # a 3.8 s gap > reset_gap_s
    node.wait_for(lambda line: 'new sequence 2 (backward: stamp 0.500000000 s after 1.200000000 s)' in line, 10,
                  'backward log line')
    node.wait_for(lambda line: 'new sequence 3 (gap: stamp jumped 4.400 s ahead of 0.600000000 s)' in line, 10,
                  'gap log line')

    reference = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    driver.send(op='publish', topic='/refcam/rgb', msg=image_msg(reference, 'rgb8', 2 * T0, 'rgb'))
    driver.send(op='publish', topic='/refcam/labels', msg=ids_msg(0, 2 * T0))
    driver.send(op='publish', topic='/refcam/labels', msg=ids_msg(1, 2 * T0 + 100_000_000))
    wait_count(driver, '/refcam/gen', 2)
    first, second = outputs(driver, '/refcam/gen')
    assert np.array_equal(pixels(first), reference)
    assert not np.array_equal(pixels(second), reference)
    node.wait_for(lambda line: '/refcam/labels: new sequence 1 (first frame)' in line
                  and 'from the reference image' in line, 10, 'reference log line')
    assert_clean_exit(node)


@needs_ros
def test_malformed_messages_are_dropped_with_a_throttled_warning(ros, checkpoint):
    params = base_params(checkpoint, input_topics=['/bad/ids', '/bad/palette'], output_topics=['/bad/ids_gen', '/bad/palette_gen'],
                         label_encodings=['ids', 'carla_palette'])
    node, driver = start(ros, params, [['/bad/ids', 'Image', 'reliable'], ['/bad/palette', 'Image', 'reliable']],
                         [['/bad/ids_gen', 'Image'], ['/bad/palette_gen', 'Image'], ['/svs_gan_generator/status', 'String']])

    def at(t):
        return int(t * 1e9)
    ids = [
        ids_msg(0, at(1.0), step=W - 1),  # wrong step
        ids_msg(0, at(1.1)),
        ids_msg(0, at(1.2), encoding='yuv422'),  # unknown encoding
        ids_msg(1, at(1.3)),
        ids_msg(0, at(1.4), height=0, width=0, step=0, data=''),  # zero size
        ids_msg(2, at(1.5)),
        ids_msg(0, at(1.6), step=W - 5),  # wrong step again, other numbers: held back by the throttle
        ids_msg(3, at(1.7)),
    ]
    for msg in ids:
        driver.send(op='publish', topic='/bad/ids', msg=msg)
    bad_colours = palette_msg(0, at(1.0))
    raw = bytearray(base64.b64decode(bad_colours['data']))
    raw[0:3] = bytes([1, 2, 3])
    bad_colours['data'] = b64(bytes(raw))
    driver.send(op='publish', topic='/bad/palette', msg=bad_colours)
    driver.send(op='publish', topic='/bad/palette', msg=palette_msg(0, at(1.1)))

    wait_count(driver, '/bad/ids_gen', 4)
    wait_count(driver, '/bad/palette_gen', 1)
    wait_status(driver, lambda s: [(c['dropped_bad'], c['published'], c['pending']) for c in s['cameras']]
                == [(4, 4, 0), (1, 1, 0)], what='status counting the drops')
    assert [e['stamp_ns'] for e in outputs(driver, '/bad/ids_gen')] == [at(t) for t in (1.1, 1.3, 1.5, 1.7)]
    assert [e['stamp_ns'] for e in outputs(driver, '/bad/palette_gen')] == [at(1.1)]
    warnings = [line for line in node.output().splitlines() if line.startswith('[WARN]')]
    for part in ('step 71 is less than', "unsupported image encoding 'yuv422'", 'zero-size image',
                 'colours outside the palette'):
        assert sum(part in line for line in warnings) == 1, (part, warnings)
    assert not any('step 67' in line for line in warnings)  # the repeated kind was throttled
    assert node.popen.poll() is None
    assert_clean_exit(node)


@needs_ros
def test_live_mode_behind_a_busy_model_keeps_the_newest_frame_and_sigint_mid_frame_is_clean(ros, checkpoint):
    """Live mode's invariants through the real node, with the model's time per frame in the test's
    hands (tests/gated_node.py): while a step runs only the newest frame waits, it is the next one
    generated, and received = published + dropped. Reliable input, so every frame reaches the node."""
    params = base_params(checkpoint, mode='live', input_topics=['/live/image'], output_topics=['/live/gen'],
                         input_reliability='reliable', input_depth=100, status_period_s=0.1)
    node, driver = start(ros, params, [['/live/image', 'Image', 'reliable']],
                         [['/live/gen', 'Image'], ['/svs_gan_generator/status', 'String']], gated=True)

    def step_entered(n):
        node.wait_for(lambda e: isinstance(e, dict) and e.get('event') == 'step_entered' and e['n'] == n, 60,
                      f'model step {n}')

    def status_received(n):
        return wait_status(driver, lambda s: s['cameras'][0]['received'] == n, 60, f'{n} frames received')['cameras'][0]

    stamps = [T0 + k * 50_000_000 for k in range(12)]
    driver.send(op='publish', topic='/live/image', msg=ids_msg(0, stamps[0]))
    step_entered(1)  # the model holds frame 0
    for k in range(1, 8):  # frames arrive while it works
        driver.send(op='publish', topic='/live/image', msg=ids_msg(k, stamps[k]))
        cam = status_received(k + 1)
        assert (cam['published'], cam['pending'], cam['dropped_live']) == (0, 1, k - 1), cam
    node.send(op='step')  # frame 0 goes out; the worker takes the one that waited
    step_entered(2)
    node.send(op='step')
    wait_count(driver, '/live/gen', 2)
    cam = wait_status(driver, lambda s: s['cameras'][0]['published'] == 2, 60, 'two frames published')['cameras'][0]
    assert [e['stamp_ns'] for e in outputs(driver, '/live/gen')] == [stamps[0], stamps[7]]  # the newest, not 1
    assert (cam['received'], cam['dropped_live'], cam['pending']) == (8, 6, 0), cam

    # the model free-running: whatever its speed, the last frame in is the last frame out
    node.send(op='open')
    rate = 200.0
    msgs = [ids_msg(k % 8, stamps[8] + int(k * 1e9 / rate)) for k in range(100)]
    driver.send(op='stream', topic='/live/image', msgs=msgs, rate_hz=rate)
    last = msgs[-1]['stamp_ns']
    driver.wait_for(lambda e: isinstance(e, dict) and e.get('topic') == '/live/gen' and e['stamp_ns'] == last, 120,
                    'the newest frame generated')
    got = outputs(driver, '/live/gen')  # nothing can follow the newest frame
    cam = wait_status(driver, lambda s: s['cameras'][0]['published'] == len(got), 60,
                      'the status counting every frame out')['cameras'][0]
    assert cam['received'] == 108 and cam['pending'] == 0, cam
    assert cam['received'] == cam['published'] + cam['dropped_live'], cam
    assert got[-1]['stamp_ns'] == last
    stamps_out = [e['stamp_ns'] for e in got]
    assert stamps_out == sorted(set(stamps_out))
    reports = [json.loads(e['data']) for e in driver.events(event='msg', topic='/svs_gan_generator/status')]
    assert max(r['cameras'][0]['pending'] for r in reports) <= 1  # the queue never grows

    # SIGINT while the model holds a frame: the step finishes after shutdown and the node exits cleanly
    node.send(op='hold')
    steps = len(node.events(event='step_entered'))
    driver.send(op='publish', topic='/live/image', msg=ids_msg(0, last + 50_000_000))
    step_entered(steps + 1)
    node.popen.send_signal(signal.SIGINT)
    node.send(op='step_after_shutdown')
    node.wait_for(lambda e: isinstance(e, dict) and e.get('event') == 'released_after_shutdown', 60,
                  'the held step released after shutdown')
    assert_clean_exit(node, interrupted=True)


@needs_ros
def test_bad_parameters_stop_the_node_with_a_clear_message(ros, checkpoint):
    for params, message in ((base_params(checkpoint, mode='fast'), "parameter mode: 'fast' is not one of"),
                            (base_params(checkpoint, jpeg_quality=500), 'jpeg_quality'),
                            (base_params('/nonexistent/ckpt'), 'no checkpoint at /nonexistent/ckpt')):
        node = ros.node(params)
        code = node.popen.wait(120)
        out = node.output()
        assert code == 1 and message in out and 'Traceback' not in out, out


# -- the launch file ------------------------------------------------------------------------------------

LAUNCH = PKG / 'launch' / 'generate.launch.py'
LAUNCH_ARGUMENTS = {'checkpoint', 'input_topic', 'output_topic', 'instance_topic', 'label_encoding', 'label_space',
                    'device',
                    'precision', 'mode', 'use_sim_time', 'params_file', 'num_threads',
                    'input_reliability', 'input_depth', 'output_reliability', 'output_depth'}


def test_launch_file_arguments_read_statically():
    tree = ast.parse(LAUNCH.read_text())
    names, defaults = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == 'ARGUMENTS' for t in node.targets):
            names |= set(ast.literal_eval(node.value))
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument' and node.args:
            if isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
                defaults[node.args[0].value] = {kw.arg: kw.value for kw in node.keywords}
    assert names == LAUNCH_ARGUMENTS
    assert ast.literal_eval(defaults['use_sim_time']['default_value']) == 'true'
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description' for n in tree.body)
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert {'LaunchDescription', 'DeclareLaunchArgument', 'Node', 'FindPackageShare'} <= imports


def test_launch_description_builds_where_launch_ros_is_installed():
    pytest.importorskip('launch_ros', reason='launch_ros has no PyPI wheel; checked on a full ROS 2 install')
    import launch
    if not hasattr(launch, 'LaunchDescription'):
        pytest.skip('`launch` here is not ROS 2 launch')
    spec = importlib.util.spec_from_file_location('generate_launch', LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert {a.name for a in description.get_launch_arguments()} == LAUNCH_ARGUMENTS
    context = launch.LaunchContext()
    for name in LAUNCH_ARGUMENTS:
        context.launch_configurations[name] = ''
    context.launch_configurations.update(checkpoint='/ckpt', input_topic='/in', use_sim_time='true',
                                         params_file=str(PKG / 'config' / 'params.yaml'))
    (node,) = module._node(context)
    assert type(node).__name__ == 'Node'


@needs_ros
def test_bench_script_reports_node_overhead(ros):
    """Only that the benchmark runs end to end and reports its fields; its numbers belong in the README."""
    proc = ros.spawn([sys.executable, str(REPO / 'scripts' / 'bench_node.py'), '--frames', '2', '--rounds', '1',
                      '--width', '128', '--height', '64', '--json'], 'bench_node')
    assert proc.popen.wait(180) == 0, proc.output()
    out = proc.output()
    result = json.loads(out[out.index('{'):])
    assert result['input_resolution'] == [64, 128] and result['frames_per_round'] == 2
    for key in ('direct_ms_median', 'node_latency_ms_median', 'node_model_ms', 'added_latency_ms',
                'latency_overhead_pct', 'direct_fps', 'node_fps', 'throughput_overhead_pct'):
        assert isinstance(result[key], float), key
