"""svs_gan_ros without ROS: the engine's queues, sequence rules and batching, the parameter table,
the params file and the ament_python package layout."""
import ast
import configparser
import queue
import random
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from svsgan_core.io import rosio
from svsgan_core.errors import InputError
from svsgan_core.io.encoding import encode_palette

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / 'ros2_ws' / 'src' / 'svs_gan_ros'
sys.path.insert(0, str(PKG))

from svs_gan_ros import convert_bag  # noqa: E402
from svs_gan_ros.engine import (CameraConfig, SynthesisEngine, Throttle, camera_info_topic,  # noqa: E402
                                is_compressed_topic, status_line)
from svs_gan_ros.params import PARAMS, qos_choice  # noqa: E402


class FakeSynth:
    """Records what the engine asks of the model; a frame's pixels say how many frames its stream made."""

    cfg = SimpleNamespace(label_space='cityscapes')

    def __init__(self):
        self.batches, self.resets = [], []

    def stream(self):
        return SimpleNamespace(frames=0)

    def reset(self, reference_image=None, stream=None):
        stream.frames = 0
        self.resets.append((stream, reference_image))

    def step_batch(self, labels, streams):
        self.batches.append([int(m[0, 0]) for m in labels])
        out = []
        for m, s in zip(labels, streams):
            s.frames += 1
            out.append(np.full(m.shape + (3,), s.frames, np.uint8))
        return out


class Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(('info', text))

    def warning(self, text):
        self.lines.append(('warning', text))

    def error(self, text):
        self.lines.append(('error', text))

    def having(self, part):
        return [t for _, t in self.lines if part in t]


def stamp(t):
    ns = int(round(t * 1e9))
    return SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9)


def mono(value, t, h=4, w=6, **over):
    data = np.full((h, w), value, np.uint8)
    fields = dict(header=SimpleNamespace(stamp=stamp(t), frame_id='cam'), height=h, width=w, encoding='mono8',
                  is_bigendian=0, step=w, data=data.tobytes())
    fields.update(over)
    return SimpleNamespace(**fields)


def drain(engine):
    while any(engine.pending()):
        engine.process_once()


def make(mode='lossless', cameras=1, encodings=None, **kw):
    synth, log, published = FakeSynth(), Log(), []
    cams = [CameraConfig(f'/in{i}', f'/out{i}', (encodings or ['ids'] * cameras)[i]) for i in range(cameras)]
    engine = SynthesisEngine(synth, cams, lambda i, rgb, msg: published.append((i, msg, rgb)), log, mode=mode, **kw)
    return engine, synth, log, published


def test_lossless_processes_every_frame_in_order_and_batches_cameras():
    engine, synth, log, published = make('lossless', cameras=2)
    for k in range(3):
        engine.submit(0, mono(k, 1 + 0.1 * k))
    engine.submit(1, mono(10, 1.0))
    assert engine.process_once() == 2
    assert synth.batches == [[0, 10]]
    drain(engine)
    assert synth.batches == [[0, 10], [1], [2]]
    stamps = [(i, m.header.stamp.nanosec) for i, m, _ in published]
    assert stamps == [(0, 0), (1, 0), (0, 100_000_000), (0, 200_000_000)]
    assert [int(rgb[0, 0, 0]) for i, _, rgb in published if i == 0] == [1, 2, 3]
    assert len(log.having('new sequence 1 (first frame)')) == 2


def test_live_keeps_only_the_newest_frame_and_counts_drops():
    engine, synth, log, published = make('live')
    for k in range(5):
        engine.submit(0, mono(k, 1 + 0.01 * k))
    assert engine.pending() == [1]
    engine.process_once()
    assert synth.batches == [[4]]
    cam = engine.status()['cameras'][0]
    assert (cam['received'], cam['published'], cam['dropped_live'], cam['pending']) == (5, 1, 4, 0)


class GatedSynth(FakeSynth):
    """A model as slow as the test says: each step_batch reports its labels, then waits for `go`."""

    def __init__(self):
        super().__init__()
        self.entered: queue.Queue = queue.Queue()
        self.go = threading.Semaphore(0)

    def step_batch(self, labels, streams):
        self.entered.put([int(m[0, 0]) for m in labels])
        assert self.go.acquire(timeout=60), 'the test never let this step finish'  # safety net only
        return super().step_batch(labels, streams)


def test_live_worker_behind_a_busy_model_keeps_one_pending_frame_and_publishes_the_newest():
    """Live mode's invariants, with the model's time per frame in the test's hands: while a step runs,
    at most one frame waits per camera, the one that waits is the newest, every received frame is
    published, dropped or pending, and the last frame in is the last frame out."""
    synth, log, published = GatedSynth(), Log(), queue.Queue()
    engine = SynthesisEngine(synth, [CameraConfig('/in', '/out', 'ids')],
                             lambda i, rgb, msg: published.put(int(msg.header.frame_id)), log, mode='live')

    def arrive(k):
        msg = mono(k % 19, 1 + 0.01 * k)
        msg.header.frame_id = str(k)
        engine.submit(0, msg)

    def finish():
        """The model finishes its step; the frame it had goes out; the worker takes what waits."""
        waiting = engine.pending() == [1]
        synth.go.release()
        out.append(published.get(timeout=60))
        if waiting:
            synth.entered.get(timeout=60)
        return waiting

    engine.start()
    try:
        rng = random.Random(0)
        received, out, in_flight = 0, [], None
        for _ in range(400):
            if in_flight is None or rng.random() < 0.6:  # a frame arrives
                arrive(received)
                received += 1
                if in_flight is None:  # an idle worker takes it at once
                    synth.entered.get(timeout=60)
                    in_flight = received - 1
                    assert engine.pending() == [0]
            else:
                newest = received - 1
                waiting = finish()
                assert out[-1] == in_flight
                in_flight = newest if waiting else None  # checked when it comes out
            assert engine.pending()[0] <= 1
            cam = engine.status()['cameras'][0]
            assert cam['received'] == received
            assert cam['received'] == cam['published'] + cam['dropped_live'] + cam['pending'] + (in_flight is not None)
        while in_flight is not None:
            newest = received - 1
            waiting = finish()
            assert out[-1] == in_flight
            in_flight = newest if waiting else None
        assert out[-1] == received - 1  # the newest frame is the last one published
        assert out == sorted(set(out)) and 0 < len(out) < received  # in order; the arrivals did outrun the model
        assert not log.lines[1:], log.lines  # only the first frame's new-sequence line
    finally:
        for _ in range(4):
            synth.go.release()
        engine.stop(timeout=10)


def test_a_backward_stamp_on_a_skipped_frame_still_starts_a_new_sequence():
    engine, synth, log, published = make('live', reset_gap_s=1.0)
    engine.submit(0, mono(1, 10.0))
    engine.process_once()
    engine.submit(0, mono(1, 10.1))
    engine.process_once()
    engine.submit(0, mono(2, 3.0))  # the loop restarts: skipped by the next one
    engine.submit(0, mono(3, 3.1))
    engine.process_once()
    assert [int(rgb[0, 0, 0]) for _, _, rgb in published] == [1, 2, 1]
    assert log.having('new sequence 2 (backward: stamp 3.000000000 s after 10.100000000 s) at stamp 3.100000000')


def test_a_forward_gap_starts_a_new_sequence_and_equal_stamps_do_not():
    engine, synth, log, published = make('lossless', reset_gap_s=0.5)
    for t in (1.0, 1.0, 1.4, 2.5):
        engine.submit(0, mono(1, t))
    drain(engine)
    assert [int(rgb[0, 0, 0]) for _, _, rgb in published] == [1, 2, 3, 1]
    assert log.having('new sequence 2 (gap: stamp jumped 1.100 s ahead of 1.400000000 s)')


def test_bad_messages_are_dropped_with_a_throttled_warning_and_the_next_good_one_is_used():
    engine, synth, log, published = make('lossless', log_throttle_s=60.0)
    engine.submit(0, mono(1, 1.0, step=3))  # step < width
    engine.submit(0, mono(1, 1.1, step=2))  # same problem, other numbers: held back
    engine.submit(0, mono(1, 1.2, encoding='yuv422'))
    engine.submit(0, mono(1, 1.3, height=0))
    engine.submit(0, mono(1, 1.4))
    drain(engine)
    warnings = [t for level, t in log.lines if level == 'warning']
    assert len(warnings) == 3 and 'step 3 is less than' in warnings[0]
    assert 'unsupported image encoding' in warnings[1] and 'zero-size' in warnings[2]
    assert [m.header.stamp.nanosec for _, m, _ in published] == [400_000_000]
    assert log.having('new sequence 1 (first frame) at stamp 1.400000000')  # the first good frame starts it
    assert engine.status()['cameras'][0]['dropped_bad'] == 4


def test_unknown_palette_colours_are_dropped():
    engine, synth, log, published = make('lossless', encodings=['carla_palette'])
    good = np.ascontiguousarray(np.dstack([encode_palette(np.full((2, 3), 1, np.uint8), 'carla')[..., ::-1],
                                           np.full((2, 3), 255, np.uint8)]))
    bad = good.copy()
    bad[0, 0, :3] = (1, 2, 3)

    def bgra(img, t):
        return SimpleNamespace(header=SimpleNamespace(stamp=stamp(t), frame_id='c'), height=2, width=3,
                               encoding='bgra8', is_bigendian=0, step=12, data=img.tobytes())
    engine.submit(0, bgra(bad, 1.0))
    engine.submit(0, bgra(good, 1.1))
    drain(engine)
    assert len(published) == 1 and synth.batches == [[0]]  # CARLA road (1) -> Cityscapes trainId road (0)
    assert log.having('dropped a bad message') and 'colour' in log.having('dropped a bad message')[0]


def test_reference_image_with_a_matching_stamp_starts_the_sequence():
    synth, log, published = FakeSynth(), Log(), []
    cams = [CameraConfig('/in', '/out', 'ids', reference_topic='/rgb')]
    engine = SynthesisEngine(synth, cams, lambda *a: published.append(a), log, mode='lossless',
                             reference_max_offset_s=0.01, reference_wait_s=0.0)
    rgb = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    bgr8 = SimpleNamespace(header=SimpleNamespace(stamp=stamp(2.0), frame_id='c'), height=4, width=6,
                           encoding='bgr8', is_bigendian=0, step=18, data=rgb[..., ::-1].tobytes())
    engine.submit_reference(0, bgr8)
    engine.submit(0, mono(1, 1.0))  # no reference near 1.0
    engine.submit(0, mono(1, 0.5))  # backward
    engine.process_once()
    assert synth.resets[-1][1] is None and log.having('first frame generated')
    engine.submit(0, mono(1, 2.005))
    engine.submit(0, mono(1, 0.1))
    drain(engine)
    refs = [r for _, r in synth.resets]
    assert refs[1] is None and np.array_equal(refs[2], rgb) and log.having('first frame from the reference image')


def test_lossless_queue_bound_drops_new_frames_with_an_error():
    engine, synth, log, published = make('lossless', max_pending=2)
    for k in range(4):
        engine.submit(0, mono(k, 1 + 0.1 * k))
    assert engine.pending() == [2]
    assert [lv for lv, _ in log.lines] == ['error'] and 'max_pending' in log.lines[0][1]
    assert engine.status()['cameras'][0]['dropped_overflow'] == 2


def test_worker_thread_publishes_and_stops():
    done = threading.Event()
    synth, log = FakeSynth(), Log()
    engine = SynthesisEngine(synth, [CameraConfig('/a', '/b', 'ids')], lambda *a: done.set(), log, mode='live')
    engine.start()
    engine.submit(0, mono(1, 1.0))
    assert done.wait(10)
    engine.stop(timeout=10)
    assert not engine._thread.is_alive()


def test_status_reports_rates_latency_and_a_log_line():
    engine, synth, log, published = make('live')
    engine.submit(0, mono(1, 1.0))
    engine.submit(0, mono(1, 1.1))
    engine.process_once()
    status = engine.status()
    cam = status['cameras'][0]
    assert cam['latency_ms'] is not None and cam['input_hz'] > 0 and status['frames_per_batch'] == 1
    assert '/in0 -> /out0' in status_line(status) and 'dropped 1 stale' in status_line(status)
    assert engine.status()['cameras'][0]['input_hz'] == 0  # rates are per report period


def test_throttle_counts_what_it_holds_back():
    now = [0.0]
    throttle = Throttle(5.0, clock=lambda: now[0])
    assert throttle('a') == 0 and throttle('a') is None and throttle('b') == 0
    now[0] = 6.0
    assert throttle('a') == 1


def test_topic_naming_follows_image_transport():
    assert camera_info_topic('/carla/ego/semantic/image') == '/carla/ego/semantic/camera_info'
    assert camera_info_topic('/cam/image_raw/compressed') == '/cam/camera_info'
    assert camera_info_topic('image') == 'camera_info' and camera_info_topic('/image') == '/camera_info'
    assert is_compressed_topic('/cam/image/compressed') and not is_compressed_topic('/compressed_cam/image')


def test_qos_defaults():
    assert qos_choice('auto', 0, 'live', 'input') == ('best_effort', 5)
    assert qos_choice('auto', 0, 'lossless', 'input') == ('reliable', 0)  # keep_all
    assert qos_choice('auto', 7, 'live', 'output') == ('reliable', 7)
    assert qos_choice('best_effort', 0, 'lossless', 'output') == ('best_effort', 100)


def test_engine_refuses_bad_configuration():
    with pytest.raises(InputError):
        make('fast')
    with pytest.raises(InputError):
        make('live', encodings=['palette'])


def test_rgb_from_msg_converts_reference_frames_to_rgb():
    rgb = np.random.default_rng(1).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    bgra = np.dstack([rgb[..., ::-1], np.zeros((3, 5), np.uint8)])
    msg = SimpleNamespace(height=3, width=5, encoding='bgra8', is_bigendian=0, step=20, data=bgra.tobytes())
    assert np.array_equal(rosio.rgb_from_msg(msg), rgb)
    fmt, data = rosio.compress(rgb, 'png', encoding='rgb8')
    assert np.array_equal(rosio.rgb_from_msg(SimpleNamespace(format=fmt, data=data)), rgb)
    with pytest.raises(InputError):
        rosio.rgb_from_msg(SimpleNamespace(height=1, width=1, encoding='mono16', is_bigendian=0, step=2,
                                           data=b'\0\0'))



# -- instance topics: pairing by exact stamp ----------------------------------------------------------

class InstanceSynth(FakeSynth):
    """FakeSynth that also records the instance ids the engine hands over (None: none for that frame)."""

    def __init__(self):
        super().__init__()
        self.instances = []

    def step_batch(self, labels, streams, instances=None):
        self.instances.append(None if instances is None else
                              [None if ids is None else int(ids[0, 0]) for ids in instances])
        return super().step_batch(labels, streams)


def inst(value, t, h=4, w=6):
    """A mono16 instance image whose pixels all hold `value`."""
    data = np.full((h, w), value, np.uint16)
    return SimpleNamespace(header=SimpleNamespace(stamp=stamp(t), frame_id='cam'), height=h, width=w,
                           encoding='mono16', is_bigendian=0, step=2 * w, data=data.tobytes())


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_paired(mode='lossless', **kw):
    synth, log, published = InstanceSynth(), Log(), []
    cams = [CameraConfig('/in0', '/out0', 'ids', instance_topic='/inst0'), CameraConfig('/in1', '/out1', 'ids')]
    engine = SynthesisEngine(synth, cams, lambda i, rgb, msg: published.append((i, msg, rgb)), log, mode=mode, **kw)
    return engine, synth, log, published


def stamps_of(published, camera=0):
    return [round(m.header.stamp.sec + m.header.stamp.nanosec / 1e9, 3) for i, m, _ in published if i == camera]


def test_lossless_pairs_every_frame_with_its_instance_image_whatever_topic_comes_first():
    engine, synth, log, published = make_paired()
    engine.submit(0, mono(1, 1.0))  # labels first
    engine.submit_instances(0, inst(101, 1.0))
    engine.submit_instances(0, inst(102, 1.1))  # instances first
    engine.submit(0, mono(2, 1.1))
    for k in range(3):  # labels two ahead of their instances
        engine.submit(0, mono(3 + k, 1.2 + 0.1 * k))
    for k in range(3):
        engine.submit_instances(0, inst(103 + k, 1.2 + 0.1 * k))
    engine.submit(1, mono(9, 1.0))  # a camera without an instance topic, batched with the other
    drain(engine)
    assert stamps_of(published) == [1.0, 1.1, 1.2, 1.3, 1.4] and stamps_of(published, 1) == [1.0]
    assert synth.batches == [[1, 9], [2], [3], [4], [5]]
    assert synth.instances == [[101, None], [102], [103], [104], [105]]  # each frame with its own image
    cam = engine.status()['cameras'][0]
    assert (cam['received'], cam['instances_received'], cam['published']) == (5, 5, 5)
    assert (cam['dropped_unpaired'], cam['instances_unpaired'], cam['unpaired_pending']) == (0, 0, 0)
    assert not [t for level, t in log.lines if level != 'info']


def test_a_camera_without_instances_calls_the_model_as_before():
    engine, synth, log, published = make_paired()
    engine.submit(1, mono(9, 1.0))
    drain(engine)
    assert synth.instances == [None]  # step_batch(labels, streams): no instances keyword at all


ORDERS = {  # how the node may see the two topics: each in order, but either one ahead
    'interleaved': None,
    'labels_ahead': lambda events: sorted(events, key=lambda e: e[0] != 'labels'),
    'instances_ahead': lambda events: sorted(events, key=lambda e: e[0] != 'instances'),
}


@pytest.mark.parametrize('order', ORDERS)
def test_a_frame_whose_partner_never_comes_is_dropped_counted_and_logged_once_a_later_pair_completes(order):
    engine, synth, log, published = make_paired(log_throttle_s=0.0)
    events = [('labels', 1.0), ('instances', 1.0), ('labels', 1.1),  # 1.1's instance image was lost
              ('labels', 1.2), ('instances', 1.2), ('instances', 1.3),  # 1.3's label frame was lost
              ('labels', 1.4), ('instances', 1.4), ('labels', 1.5), ('instances', 1.5)]
    if ORDERS[order]:
        events = ORDERS[order](events)  # a stable sort: each topic keeps its own order
    for topic, t in events:
        if topic == 'labels':
            engine.submit(0, mono(1, t))
        else:
            engine.submit_instances(0, inst(7, t))
    drain(engine)
    assert stamps_of(published) == [1.0, 1.2, 1.4, 1.5]
    cam = engine.status()['cameras'][0]
    assert (cam['dropped_unpaired'], cam['instances_unpaired'], cam['unpaired_pending']) == (1, 1, 0)
    assert log.having('/in0: dropped the frame at stamp 1.100000000: no instance image with this stamp on /inst0')
    assert log.having('/inst0: dropped the instance image at stamp 1.300000000: no label frame')
    assert 'without instances' in status_line(engine.status())


def test_a_half_waits_at_most_instance_wait_s_and_its_sequence_start_carries_over():
    clock = Clock()
    engine, synth, log, published = make_paired(instance_wait_s=2.0, clock=clock)
    engine.submit(0, mono(1, 1.0))  # the first frame: it would start the sequence
    clock.now = 1.9
    assert engine.process_once() == 0 and engine.status()['cameras'][0]['unpaired_pending'] == 1
    clock.now = 2.0
    engine.process_once()  # the worker's round notices the stream stopped
    cam = engine.status()['cameras'][0]
    assert (cam['dropped_unpaired'], cam['unpaired_pending']) == (1, 0)
    assert log.having('none came within 2 s (instance_wait_s)')
    engine.submit(0, mono(2, 1.1))
    engine.submit_instances(0, inst(5, 1.1))
    drain(engine)
    assert stamps_of(published) == [1.1] and len(synth.resets) == 1
    assert log.having('new sequence 1 (first frame) at stamp 1.100000000')


def test_the_pairing_queue_is_bounded_oldest_first():
    engine, synth, log, published = make_paired(instance_queue_size=2)
    for t in (1.0, 1.1, 1.2):
        engine.submit(0, mono(1, t))
    cam = engine.status()['cameras'][0]
    assert (cam['dropped_unpaired'], cam['unpaired_pending']) == (1, 2)
    assert log.having('dropped the frame at stamp 1.000000000') and log.having('instance_queue_size')
    engine.submit_instances(0, inst(3, 1.1))
    engine.submit_instances(0, inst(3, 1.2))
    drain(engine)
    assert stamps_of(published) == [1.1, 1.2]


def test_a_looping_bag_keeps_the_new_loops_frames_whose_instances_lag_behind():
    """ExactTime's stamp order would drop stamps 0.0 and 0.1 (older than 10.0) when 10.0 pairs; they
    arrived later, so their instance images are still coming."""
    engine, synth, log, published = make_paired()
    for t in (10.0, 10.1, 0.0, 0.1):
        engine.submit(0, mono(1, t))
    for t in (10.0, 10.1, 0.0, 0.1):
        engine.submit_instances(0, inst(1, t))
    drain(engine)
    assert stamps_of(published) == [10.0, 10.1, 0.0, 0.1]
    assert engine.status()['cameras'][0]['dropped_unpaired'] == 0
    assert log.having('new sequence 2 (backward')


def test_an_instance_image_of_the_wrong_size_is_a_logged_drop_and_the_next_pair_is_generated():
    engine, synth, log, published = make_paired()
    engine.submit(0, mono(1, 1.0))
    engine.submit_instances(0, inst(7, 1.0, h=3, w=6))
    engine.submit(0, mono(2, 1.1))
    engine.submit_instances(0, SimpleNamespace(**{**vars(inst(7, 1.1)), 'encoding': 'yuv422'}))
    engine.submit(0, mono(3, 1.2))
    engine.submit_instances(0, inst(7, 1.2))
    drain(engine)
    assert stamps_of(published) == [1.2] and synth.batches == [[3]]
    assert engine.status()['cameras'][0]['dropped_bad'] == 2
    assert log.having('instance image on /inst0 at stamp 1.000000000 is 6x3, its label image 6x4')
    assert log.having("instance image on /inst0 at stamp 1.100000000: Image message: unsupported image encoding")
    assert log.having('new sequence 1 (first frame) at stamp 1.200000000')  # the dropped start carried over


def test_live_mode_with_instances_keeps_the_newest_pair():
    engine, synth, log, published = make_paired('live')
    for k in range(3):
        engine.submit(0, mono(k, 1 + 0.1 * k))
        engine.submit_instances(0, inst(20 + k, 1 + 0.1 * k))
    drain(engine)
    assert synth.batches == [[2]] and synth.instances == [[22]]
    assert engine.status()['cameras'][0]['dropped_live'] == 2


def test_stamp_pairer_follows_exact_time():
    from svs_gan_ros.engine import StampPairer
    clock = Clock()
    pairer = StampPairer(queue_size=3, wait_s=1.0, clock=clock)
    assert pairer.add(0, 5, 'a') == (None, [])
    pair, dropped = pairer.add(0, 5, 'b')  # the same stamp again: the newer one is kept
    assert pair is None and dropped == [(0, 5, 'a', 'a later message with the same stamp replaced it')]
    assert pairer.add(1, 5, 'x') == (('b', 'x'), []) and len(pairer) == 0
    with pytest.raises(InputError, match='instance_queue_size'):
        StampPairer(queue_size=0, wait_s=1.0)

# -- the package and its parameters file, read as files --------------------------------

def test_params_file_documents_every_parameter_with_its_default():
    text = (PKG / 'config' / 'params.yaml').read_text()
    values = yaml.safe_load(text)['/**']['ros__parameters']
    for p in PARAMS:
        if p.default == 'string_array':
            assert f'# {p.name}:' in text, p.name
        else:
            assert values[p.name] == p.default, p.name
            assert type(values[p.name]) is type(p.default), p.name
    assert set(values) == {p.name for p in PARAMS if p.default != 'string_array'}


def test_docs_describe_every_parameter():
    text = (REPO / 'docs' / 'ros.md').read_text()
    missing = [p.name for p in PARAMS if f'| `{p.name}` |' not in text]
    assert not missing


def test_ament_python_layout():
    assert (PKG / 'resource' / 'svs_gan_ros').is_file()
    root = ET.parse(PKG / 'package.xml').getroot()
    assert root.get('format') == '3' and root.findtext('name') == 'svs_gan_ros'
    assert root.find('export/build_type').text == 'ament_python'
    deps = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'rosgraph_msgs', 'launch', 'launch_ros', 'python3-numpy',
            'python3-opencv'} <= deps
    cfg = configparser.ConfigParser()
    cfg.read(PKG / 'setup.cfg')
    assert cfg['develop']['script_dir'] == cfg['install']['install_scripts'] == '$base/lib/svs_gan_ros'
    setup = (PKG / 'setup.py').read_text()
    for needle in ("'share/ament_index/resource_index/packages'", "'launch'", "'config'", "'package.xml'",
                   "'generator_node = svs_gan_ros.generator_node:main'",
                   "'convert_bag = svs_gan_ros.convert_bag:main'"):
        assert needle in setup, needle
    for module in ('generator_node', 'convert_bag'):
        tree = ast.parse((PKG / 'svs_gan_ros' / f'{module}.py').read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == 'main' for n in tree.body), module


def test_convert_bag_hands_over_to_svsgan_convert(monkeypatch, capsys):
    assert convert_bag._without_ros_args(['a.db3', '--ros-args', '-p', 'x:=1', '--', '-o', 'b']) == \
        ['a.db3', '-o', 'b']
    import importlib.util
    if importlib.util.find_spec('svsgan_core.commands.convert') is None:
        assert convert_bag.main(['in.db3']) == 2
        assert 'no `convert` command yet' in capsys.readouterr().err
    else:
        calls = []
        monkeypatch.setattr('svsgan_core.cli.main', lambda argv, prog=None: calls.append((argv, prog)) or 0)
        assert convert_bag.main(['in.db3', '--ros-args']) == 0 and calls == [(['convert', 'in.db3'], 'convert_bag')]


def test_a_bad_header_stamp_is_dropped_and_named_on_every_topic_of_a_camera():
    engine, synth, log, published = make_paired(log_throttle_s=0.0)
    no_header = SimpleNamespace(height=4, width=6, encoding='mono8', is_bigendian=0, step=6, data=bytes(24))
    bad_nanosec = mono(1, 1.0, header=SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=10**9), frame_id='c'))
    engine.submit(0, no_header)
    engine.submit(0, bad_nanosec)
    engine.submit_instances(0, SimpleNamespace(**{**vars(inst(101, 1.0)), 'header': None}))
    engine.submit_reference(0, no_header)
    engine.submit(0, mono(2, 2.0))
    engine.submit_instances(0, inst(102, 2.0))
    drain(engine)
    assert stamps_of(published) == [2.0]  # the good pair still goes through
    assert engine.status()['cameras'][0]['dropped_bad'] == 3  # labels and instances count; a reference only logs
    for what in ('message', 'instance image', 'reference image'):
        assert log.having(f'dropped a bad {what}'), what
