"""The generator node's logic without ROS: per-camera queues, sequence rules, batching, statistics.

The node (generator_node.py) turns subscription callbacks into `submit` calls and `publish` calls
into messages; everything else lives here, runs in one worker thread and is tested without rclpy.
Messages are only duck-typed (``header.stamp``, and what svsgan_core.io.rosio reads).

Sequence rules (docs/ros.md, "Time"): every received stamp, processed or not, goes through the
camera's SequenceTimeline in arrival order, so a loop or a gap is noticed even when live mode skips
the frame that carried it; the next frame that is processed then starts a new sequence.

A camera with an instance topic pairs each label frame with the instance image of the same header
stamp (StampPairer, message_filters' ExactTime policy) before the frame joins the camera's queue.
"""

from __future__ import annotations

import collections
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from svsgan_core.data.labels import get_label_space
from svsgan_core.errors import InputError
from svsgan_core.io import rosio
from svsgan_core.io.encoding import LabelDecoder
from svsgan_core.io.timeline import SequenceTimeline, stamp_to_ns

COMPRESSED_TRANSPORTS = ('compressed', 'compressedDepth')


def is_compressed_topic(topic: str) -> bool:
    """image_transport names a compressed stream '<base>/compressed' (or '/compressedDepth')."""
    return topic.rstrip('/').rpartition('/')[2] in COMPRESSED_TRANSPORTS


def camera_info_topic(image_topic: str) -> str:
    """The CameraInfo topic beside an image topic, as image_transport pairs them:
    '/ns/image_raw' and '/ns/image_raw/compressed' -> '/ns/camera_info'."""
    topic = image_topic.rstrip('/')
    if is_compressed_topic(topic):
        topic = topic.rpartition('/')[0]
    base, sep, _ = topic.rpartition('/')
    return f'{base}{sep}camera_info'


def _payload_bytes(msg: Any) -> int:
    data = getattr(msg, 'data', None)
    try:
        return len(data) if data is not None else 0
    except TypeError:
        return 0


def format_stamp(ns: int) -> str:
    sign = '-' if ns < 0 else ''
    sec, nsec = divmod(abs(ns), 1_000_000_000)
    return f'{sign}{sec}.{nsec:09d}'


STATS_WINDOW = 1024  # latencies and batch timings kept between status reports (bounded memory)


def message_kind(text: str) -> str:
    """What a warning is about, without what varies from message to message (numbers, quoted
    values such as an encoding name), so that throttling keys on the kind, not on the text."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+", '#', text)


class Throttle:
    """Says whether a message of a kind may be logged now, and how many were held back.

    At most ``max_kinds`` kinds are remembered (the least recently logged is forgotten), so input
    that invents a new kind per message cannot grow the table."""

    def __init__(
        self, period_s: float, clock: Callable[[], float] = time.monotonic, max_kinds: int = 256
    ):
        self.period_s = period_s
        self.clock = clock
        self.max_kinds = max_kinds
        self._last: collections.OrderedDict[Any, float] = collections.OrderedDict()
        self._held: collections.Counter = collections.Counter()

    def __call__(self, key: Any) -> int | None:
        """None: hold this one back; else the number held back since the last one let through."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._held[key] += 1
            return None
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.max_kinds:
            old, _ = self._last.popitem(last=False)
            self._held.pop(old, None)
        return self._held.pop(key, 0)


class StampPairer:
    """Pairs a camera's label frames with its instance images by exact header stamp: message_filters'
    ExactTime policy (TimeSynchronizer), in plain Python since message_filters has no wheel.

    A half pair waits for the other topic's message with the same stamp; at most ``queue_size`` half
    pairs wait (the oldest goes when a new one would exceed it). When a pair completes, the halves it
    proves hopeless are dropped, as ExactTime drops the tuples older than the one it signals: a
    camera's two topics are published in the same order and each arrives in order, so a label frame
    that came before the completed pair's label frame would have had its instance image before the
    completed pair's one, and likewise the other way round. "Before" is each topic's own arrival
    order, not stamp order as in ExactTime, so a looping bag (stamps going back) keeps the new loop's
    first frames, and it does not matter which topic runs ahead. A half also goes when its partner has
    not come within ``wait_s`` seconds of ``clock`` (the other stream stopped), so nothing waits unseen.

    ``add`` and ``expire`` return the pair (or None) and the dropped halves as
    ``(side, stamp_ns, item, why)``; side 0 is the label frame, 1 the instance image.
    """

    def __init__(self, queue_size: int, wait_s: float, clock: Callable[[], float] = time.monotonic):
        if queue_size < 1:
            raise InputError(f'instance_queue_size must be at least 1, not {queue_size}')
        self.queue_size = queue_size
        self.wait_s = wait_s
        self.clock = clock
        self._arrivals = [0, 0]  # messages received so far on each side: their arrival order
        # stamp -> [label, instance, first arrival time, label's arrival number, instance's arrival number]
        self._halves: collections.OrderedDict[int, list] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._halves)

    @staticmethod
    def _drop(stamp: int, half: list, why: str) -> list[tuple[int, int, Any, str]]:
        return [(side, stamp, half[side], why) for side in (0, 1) if half[side] is not None]

    def add(self, side: int, stamp: int, item: Any) -> tuple[tuple[Any, Any] | None, list]:
        dropped: list[tuple[int, int, Any, str]] = []
        self._arrivals[side] += 1
        half = self._halves.get(stamp)
        if half is None:
            half = self._halves[stamp] = [None, None, self.clock(), 0, 0]
        elif half[side] is not None:  # ExactTime keeps the newer of two messages with one stamp
            dropped.append((side, stamp, half[side], 'a later message with the same stamp replaced it'))
        half[side], half[3 + side] = item, self._arrivals[side]
        if half[0] is not None and half[1] is not None:
            del self._halves[stamp]
            for older, waiting in list(self._halves.items()):
                present = 0 if waiting[0] is not None else 1
                if waiting[3 + present] < half[3 + present]:  # came before the pair on its own topic
                    del self._halves[older]
                    dropped += self._drop(older, waiting, 'a later stamp was paired first')
            return (half[0], half[1]), dropped
        while len(self._halves) > self.queue_size:
            old, old_half = self._halves.popitem(last=False)
            dropped += self._drop(old, old_half, f'{self.queue_size} unpaired stamps wait (instance_queue_size)')
        return None, dropped

    def expire(self) -> list[tuple[int, int, Any, str]]:
        """Drop the halves whose partner has not come within wait_s."""
        now, dropped = self.clock(), []
        while self._halves:
            stamp, half = next(iter(self._halves.items()))
            if now - half[2] < self.wait_s:
                break
            self._halves.popitem(last=False)
            dropped += self._drop(stamp, half, f'none came within {self.wait_s:g} s (instance_wait_s)')
        return dropped


@dataclass
class CameraConfig:
    input_topic: str
    output_topic: str
    label_encoding: str = 'carla_palette'
    reference_topic: str = ''
    instance_topic: str = ''  # instance images paired with the labels by exact stamp; '' for none


@dataclass
class Frame:
    msg: Any
    stamp_ns: int
    received: float  # time.monotonic() in the callback
    reason: str | None = None  # the timeline's verdict: 'first', 'backward', 'gap' or None
    prev_ns: int | None = None  # the stamp before it, for the log line
    reason_ns: int | None = (
        None  # the stamp that broke the sequence (a skipped frame's, in live mode)
    )
    size: int = 0  # payload bytes, for max_pending_mb
    instances: Any = None  # the instance image message of the same stamp, for a camera with one

    def inherit(self, older: 'Frame') -> None:
        """Take over the sequence break of a frame that will not be processed."""
        if older.reason and not self.reason:
            self.reason, self.prev_ns, self.reason_ns = (
                older.reason,
                older.prev_ns,
                older.reason_ns,
            )


@dataclass
class CameraStats:
    received: int = 0
    published: int = 0
    dropped_live: int = 0
    dropped_bad: int = 0
    dropped_overflow: int = 0
    lost: int = 0  # the subscription's message-lost events (DDS lost them before the callback)
    instances_received: int = 0
    dropped_unpaired: int = 0  # label frames whose instance image never came
    instances_unpaired: int = 0  # instance images whose label frame never came
    sequences: int = 0
    latencies: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=STATS_WINDOW)
    )
    last_received: int = 0
    last_published: int = 0


class Camera:
    """One input/output pair: its own decoder, timeline and synthesizer stream; shared model."""

    def __init__(
        self,
        index: int,
        cfg: CameraConfig,
        decoder: LabelDecoder,
        stream: Any,
        reset_gap_s: float,
        pairer: StampPairer | None = None,
    ):
        self.index = index
        self.cfg = cfg
        self.name = cfg.input_topic
        self.decoder = decoder
        self.stream = stream
        self.timeline = SequenceTimeline(reset_gap_s)
        self.queue: collections.deque[Frame] = collections.deque()
        self.queued_bytes = 0  # payload bytes of the frames in queue (max_pending_mb)
        self.references: collections.deque[tuple[int, Any]] = collections.deque(maxlen=8)
        self.carry: Frame | None = None  # a sequence start whose frame could not be used
        self.pairer = pairer  # None: no instance topic
        self.stats = CameraStats()


class SynthesisEngine:
    """Queues label frames per camera and runs the synthesizer over them in a worker thread.

    ``publish(camera_index, rgb, input_msg)`` is called from the worker thread for every generated
    frame; ``log`` needs ``info``, ``warning`` and ``error`` (an rclpy logger fits).
    """

    def __init__(
        self,
        synth: Any,
        cameras: list[CameraConfig],
        publish: Callable[[int, np.ndarray, Any], None],
        log: Any,
        *,
        mode: str = 'live',
        label_space: str = '',
        carla_version: str = '0.9.16',
        reset_gap_s: float = 1.0,
        max_pending: int = 1000,
        max_pending_mb: float = 512.0,
        max_megapixels: float = rosio.MAX_PIXELS / 1e6,
        reference_max_offset_s: float = 0.02,
        reference_wait_s: float = 0.2,
        log_throttle_s: float = 5.0,
        instance_queue_size: int = 30,
        instance_wait_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if mode not in ('live', 'lossless'):
            raise InputError(f"mode must be 'live' or 'lossless', not {mode!r}")
        if not cameras:
            raise InputError('no cameras: input_topics is empty')
        if label_space:  # refused for every camera, not only where an 'ids' camera would read it
            get_label_space(label_space, 'parameter label_space:')
        self.synth = synth
        self.mode = mode
        self.publish = publish
        self.log = log
        self.max_pending = max_pending
        self.max_pending_bytes = int(max_pending_mb * 2**20)
        self.max_pixels = int(max_megapixels * 1e6)
        self.reference_max_offset_ns = int(round(reference_max_offset_s * 1e9))
        self.reference_wait_s = reference_wait_s
        target = synth.cfg.label_space
        self.cameras = []
        for i, cfg in enumerate(cameras):
            source = (label_space or None) if cfg.label_encoding == 'ids' else None
            decoder = LabelDecoder(
                cfg.label_encoding,
                target_space=target,
                source_space=source,
                carla_version=carla_version,
            )
            pairer = (StampPairer(instance_queue_size, instance_wait_s, clock)
                      if cfg.instance_topic else None)
            self.cameras.append(Camera(i, cfg, decoder, synth.stream(), reset_gap_s, pairer))
        self._cond = threading.Condition()
        self._throttle = Throttle(log_throttle_s)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._infer: collections.deque[tuple[float, int]] = collections.deque(maxlen=STATS_WINDOW)
        self._infer_total = [
            0.0,
            0,
        ]  # seconds in step_batch, frames it made: counters for benchmarks
        self._last_status = time.monotonic()

    # -- called from subscription callbacks: constant time, never waits on inference --------------
    def submit(self, index: int, msg: Any) -> None:
        cam = self.cameras[index]
        received = time.monotonic()
        stamp = self._stamp(cam, msg, 'message')
        if stamp is None:
            return
        size = _payload_bytes(msg)
        with self._cond:
            cam.stats.received += 1
            prev = cam.timeline.last_ns
            frame = Frame(msg, stamp, received, cam.timeline.observe(stamp), prev, stamp, size)
            if cam.pairer is not None:
                self._pair(cam, 0, stamp, frame)
                return
            self._enqueue(cam, frame)

    def submit_instances(self, index: int, msg: Any) -> None:
        """An instance image for a camera with an instance topic: it waits for its label frame."""
        cam = self.cameras[index]
        stamp = self._stamp(cam, msg, 'instance image')
        if stamp is None:
            return
        with self._cond:
            cam.stats.instances_received += 1
            self._pair(cam, 1, stamp, msg)

    def _pair(self, cam: Camera, side: int, stamp: int, item: Any) -> None:
        """Hand a half to the camera's pairer (lock held); a completed pair joins the queue."""
        pair, dropped = cam.pairer.add(side, stamp, item)
        self._unpaired(cam, dropped + cam.pairer.expire())
        if pair is not None:
            frame, instances = pair
            frame.instances = instances
            frame.size += _payload_bytes(instances)
            self._enqueue(cam, frame)

    def _unpaired(self, cam: Camera, dropped: list) -> None:
        """Count and log halves whose partner never came (lock held); a dropped label frame's
        sequence break carries over to the next frame that is processed."""
        for side, stamp, item, why in dropped:
            if side == 0:
                cam.stats.dropped_unpaired += 1
                cam.carry = cam.carry or (item if item.reason else None)
                text = (f'{cam.name}: dropped the frame at stamp {format_stamp(stamp)}: no instance image '
                        f'with this stamp on {cam.cfg.instance_topic} ({why})')
            else:
                cam.stats.instances_unpaired += 1
                text = (f'{cam.cfg.instance_topic}: dropped the instance image at stamp {format_stamp(stamp)}: '
                        f'no label frame with this stamp on {cam.name} ({why})')
            self._warn(cam, 'warning', text)

    def _expire_unpaired(self) -> None:
        for cam in self.cameras:
            if cam.pairer is not None and len(cam.pairer):
                self._unpaired(cam, cam.pairer.expire())

    def _enqueue(self, cam: Camera, frame: Frame) -> None:
        """A frame ready to generate joins the camera's queue (lock held): live mode replaces the
        one waiting, lossless mode queues it within max_pending / max_pending_mb."""
        size = frame.size
        if self.mode == 'live':
            if cam.queue:
                older = cam.queue.pop()
                cam.queued_bytes -= older.size
                frame.inherit(older)
                cam.stats.dropped_live += 1
        elif len(cam.queue) >= self.max_pending or (
            cam.queue and cam.queued_bytes + size > self.max_pending_bytes
        ):
            cam.stats.dropped_overflow += 1
            cam.carry = cam.carry or (frame if frame.reason else None)
            self._warn(
                cam,
                'error',
                f'{cam.name}: lossless queue full ({len(cam.queue)} frames, '
                f'{cam.queued_bytes / 2**20:.1f} MiB; max_pending {self.max_pending}, '
                f'max_pending_mb {self.max_pending_bytes / 2**20:g}); dropping new frames: '
                'the model is slower than the input',
            )
            return
        cam.queue.append(frame)
        cam.queued_bytes += size
        self._cond.notify_all()

    def message_lost(self, index: int, count: int, topic: str = '') -> None:
        """The subscription's message-lost event: DDS lost messages before they reached us (a
        best-effort or shallow publisher). Counted in the status and logged, never silent.
        ``topic``: the camera's instance or label topic that lost them (default: the labels')."""
        if count <= 0:
            return
        cam = self.cameras[index]
        with self._cond:
            cam.stats.lost += count
            total = cam.stats.lost
        self._warn(
            cam,
            'error',
            f'{topic or cam.name}: {count} message(s) lost in transport before reaching the node '
            f'({total} so far); for lossless input the publisher must be reliable with a '
            'history deep enough for its bursts (or keep_all)',
        )

    def submit_reference(self, index: int, msg: Any) -> None:
        cam = self.cameras[index]
        stamp = self._stamp(cam, msg, 'reference image')
        if stamp is None:
            return
        with self._cond:
            cam.references.append((stamp, msg))
            self._cond.notify_all()

    # -- the worker -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name='svsgan-worker', daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _run(self) -> None:
        while not self._stopping:
            try:
                self.process_once(timeout=0.5)
            except Exception as exc:  # a bug must not kill the node; it is logged every time
                if not self._stopping:
                    self.log.error(f'worker: unexpected {type(exc).__name__}: {exc}')

    def _take(self, timeout: float) -> list[tuple[Camera, Frame]]:
        with self._cond:
            self._expire_unpaired()  # the worker wakes at least every 0.5 s: a stopped stream is noticed
            if not any(c.queue for c in self.cameras) and not self._stopping:
                self._cond.wait(timeout)
            taken = [(c, c.queue.popleft()) for c in self.cameras if c.queue]
            for c, frame in taken:
                c.queued_bytes -= frame.size
            return taken

    def process_once(self, timeout: float = 0.0) -> int:
        """Generate one frame for every camera with a pending one (oldest first in lossless), in
        one batched step; returns how many frames were published."""
        batch = self._take(timeout)
        labels, instances, items = [], [], []
        for cam, frame in batch:
            try:
                label_map = rosio.labels_from_msg(frame.msg, cam.decoder, self.max_pixels)
                instance_ids = self._instances(cam, frame, label_map.shape)
            except (
                Exception
            ) as exc:  # message content is untrusted: whatever fails, drop this one only
                self._bad(cam, exc)
                cam.carry = cam.carry or (frame if frame.reason else None)
                continue
            if cam.carry is not None:
                frame.inherit(cam.carry)
                cam.carry = None
            if frame.reason:
                self._start_sequence(cam, frame)
            labels.append(label_map)
            instances.append(instance_ids)
            items.append((cam, frame))
        if not items:
            return 0
        streams = [c.stream for c, _ in items]
        t0 = time.perf_counter()
        try:
            if any(ids is not None for ids in instances):
                images = self.synth.step_batch(labels, streams, instances=instances)
            else:  # single-topic cameras call the model exactly as before instances existed
                images = self.synth.step_batch(labels, streams)
        except Exception as exc:
            for cam, frame in items:
                self._bad(cam, exc, what='frame (inference failed)')
                if not frame.reason:
                    frame.reason, frame.reason_ns = 'error', frame.stamp_ns
                cam.carry = cam.carry or frame
            return 0
        infer = time.perf_counter() - t0
        published = 0
        for (cam, frame), rgb in zip(items, images):
            try:
                self.publish(cam.index, rgb, frame.msg)
            except Exception as exc:
                if self._stopping:
                    return published
                self._warn(
                    cam,
                    'error',
                    f'{cam.name}: could not publish a frame: {type(exc).__name__}: {exc}',
                )
                continue
            published += 1
            with self._cond:
                cam.stats.published += 1
                cam.stats.latencies.append(time.monotonic() - frame.received)
        with self._cond:
            self._infer.append((infer, len(items)))
            self._infer_total[0] += infer
            self._infer_total[1] += len(items)
        return published

    def _instances(self, cam: Camera, frame: Frame, shape: tuple[int, ...]) -> np.ndarray | None:
        """The frame's instance ids, checked against its label image's size; None without any."""
        if frame.instances is None:
            return None
        where = f'instance image on {cam.cfg.instance_topic} at stamp {format_stamp(frame.stamp_ns)}'
        try:
            ids = rosio.instances_from_msg(frame.instances, self.max_pixels)
        except Exception as exc:
            raise InputError(f'{where}: {exc}') from None
        if ids.shape != shape:
            raise InputError(
                f'{where} is {ids.shape[1]}x{ids.shape[0]}, its label image {shape[1]}x{shape[0]}: '
                'the instance and semantic cameras must have the same resolution'
            )
        return ids

    def _start_sequence(self, cam: Camera, frame: Frame) -> None:
        reference = self._find_reference(cam, frame.stamp_ns) if cam.cfg.reference_topic else None
        self.synth.reset(reference_image=reference, stream=cam.stream)
        with self._cond:
            cam.stats.sequences += 1
        if frame.reason == 'first':
            why = 'first frame'
        elif frame.reason == 'backward':
            why = (
                f'backward: stamp {format_stamp(frame.reason_ns)} s '
                f'after {format_stamp(frame.prev_ns)} s'
            )
        elif frame.reason == 'gap':
            gap = (frame.reason_ns - frame.prev_ns) / 1e9
            why = f'gap: stamp jumped {gap:.3f} s ahead of {format_stamp(frame.prev_ns)} s'
        else:
            why = 'after a failed inference'
        first = (
            'from the reference image' if reference is not None else 'generated (first-frame mode)'
        )
        self.log.info(
            f'{cam.name}: new sequence {cam.stats.sequences} ({why}) at stamp '
            f'{format_stamp(frame.stamp_ns)}; first frame {first}'
        )

    def _find_reference(self, cam: Camera, stamp_ns: int) -> np.ndarray | None:
        deadline = time.monotonic() + self.reference_wait_s
        with self._cond:
            while True:
                near = [
                    (abs(s - stamp_ns), i)
                    for i, (s, _) in enumerate(cam.references)
                    if abs(s - stamp_ns) <= self.reference_max_offset_ns
                ]
                if near:
                    msg = cam.references[min(near)[1]][1]
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping:
                    return None
                self._cond.wait(remaining)
        try:
            return rosio.rgb_from_msg(msg, self.max_pixels)
        except InputError as exc:
            self._bad(cam, exc, what='reference image')
            return None

    # -- reporting ------------------------------------------------------------------------------
    def _stamp(self, cam: Camera, msg: Any, what: str) -> int | None:
        """The header stamp in ns, or None after logging and counting the message as a bad `what`."""
        try:
            return stamp_to_ns(msg.header.stamp)
        except (InputError, AttributeError) as exc:
            self._bad(cam, exc, what=what)
            return None

    def _bad(self, cam: Camera, exc: BaseException, what: str = 'message') -> None:
        with self._cond:
            if what != 'reference image':
                cam.stats.dropped_bad += 1
        self._warn(cam, 'warning', f'{cam.name}: dropped a bad {what}: {exc}')

    def _warn(self, cam: Camera, level: str, text: str) -> None:
        """Log at most once per log_throttle_s per camera and kind of problem (message_kind)."""
        held = self._throttle((cam.index, message_kind(text)))
        if held is None:
            return
        if held:
            text += f' ({held} more like this not shown)'
        getattr(self.log, level)(text)

    def pending(self) -> list[int]:
        with self._cond:
            return [len(c.queue) for c in self.cameras]

    def status(self) -> dict:
        """Counts since start, rates and latency since the previous call."""
        now = time.monotonic()
        with self._cond:
            dt = max(now - self._last_status, 1e-9)
            self._last_status = now
            infer = list(self._infer)
            self._infer.clear()
            infer_total, frames_total = self._infer_total
            cameras = []
            for c in self.cameras:
                s = c.stats
                lat = list(s.latencies)
                s.latencies.clear()
                cameras.append(
                    {
                        'input': c.cfg.input_topic,
                        'output': c.cfg.output_topic,
                        'received': s.received,
                        'published': s.published,
                        'dropped_live': s.dropped_live,
                        'dropped_bad': s.dropped_bad,
                        'dropped_overflow': s.dropped_overflow,
                        'lost': s.lost,
                        'instance': c.cfg.instance_topic,
                        'instances_received': s.instances_received,
                        'dropped_unpaired': s.dropped_unpaired,
                        'instances_unpaired': s.instances_unpaired,
                        'unpaired_pending': len(c.pairer) if c.pairer is not None else 0,
                        'pending': len(c.queue),
                        'pending_mb': round(c.queued_bytes / 2**20, 3),
                        'sequences': s.sequences,
                        'input_hz': round((s.received - s.last_received) / dt, 3),
                        'output_hz': round((s.published - s.last_published) / dt, 3),
                        'latency_ms': round(1e3 * sum(lat) / len(lat), 2) if lat else None,
                        'latency_max_ms': round(1e3 * max(lat), 2) if lat else None,
                    }
                )
                s.last_received, s.last_published = s.received, s.published
        frames = sum(n for _, n in infer)
        return {
            'mode': self.mode,
            'cameras': cameras,
            'batches': len(infer),
            'infer_ms_per_batch': (
                round(1e3 * sum(t for t, _ in infer) / len(infer), 2) if infer else None
            ),
            'frames_per_batch': round(frames / len(infer), 3) if infer else None,
            'infer_s_total': infer_total,
            'frames_total': frames_total,
        }


def status_line(status: dict) -> str:
    parts = []
    for c in status['cameras']:
        lat = (
            'n/a'
            if c['latency_ms'] is None
            else f"{c['latency_ms']:.0f} ms (max {c['latency_max_ms']:.0f})"
        )
        unpaired = (f" / {c['dropped_unpaired']} without instances (+{c['instances_unpaired']} instance "
                    'images without labels)' if c.get('instance') else '')
        parts.append(
            f"{c['input']} -> {c['output']}: in {c['input_hz']:.2f} Hz, "
            f"out {c['output_hz']:.2f} Hz, "
            f"latency {lat}, dropped {c['dropped_live']} stale / {c['dropped_bad']} bad / "
            f"{c['dropped_overflow']} overflow / {c.get('lost', 0)} lost in transport{unpaired}, "
            f"pending {c['pending']}"
        )
    infer = status['infer_ms_per_batch']
    tail = f'; model {infer:.0f} ms per batch of {status["frames_per_batch"]:.2f}' if infer else ''
    return 'status: ' + ' | '.join(parts) + tail
