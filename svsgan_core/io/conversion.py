"""Offline bag conversion: a ROS 2 bag in, the same bag plus generated camera topics out.

The one engine behind `svsgan convert`, `svsgan demo` and the conversion benchmark, so what the demo
shows and what the benchmark measures is what users run.

- Every input message is copied byte for byte, at its bag time, with its topic's type definition,
  serialization format and QoS profiles.
- Each message of a mapped semantic topic is followed by one generated sensor_msgs/Image (rgb8,
  the input's header: stamp and frame_id) and, optionally, a JPEG sensor_msgs/CompressedImage on
  `<target>/compressed` (image_transport's naming), both at the input's bag time.
- Lossless: every frame, in bag order. Each mapped topic has its own sequence state, restarted by
  the node's rule (svsgan_core.io.timeline): a header stamp that goes backwards or jumps forward by
  more than the reset gap starts a new sequence.
- A map may name an RGB camera topic recorded beside the semantic one: each sequence then starts
  from the camera frame with the semantic frame's header stamp (svsgan_core.io.reference), as the
  node's reference_topic does; without one it starts in first-frame mode, counted in the result.
- A mapped topic may have an instance topic (`ConvertOptions.instances`, `--instances SOURCE=TOPIC`):
  the instance image with exactly the semantic frame's header stamp (the node's pairing) is decoded
  (CARLA's bgra8 instance camera, mono ids) and handed to the generator beside the labels
  (`synth.step(..., instances=ids)`). A frame whose instance image is missing, does not decode or has
  another size is still generated, from the labels alone (the model then draws semantic edges), and
  counted in the result: conversion stays lossless.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..data.labels import get_label_space
from ..errors import InputError
from ..runtime.synthesizer import VideoSynthesizer
from .bags import COMPRESSED_IMAGE, IMAGE, BagReader, BagWriter, check_topic_name, writer_version
from .encoding import LabelDecoder
from .reference import MAX_DT_S, ReferenceCursor, check_max_dt
from .rosio import MAX_PIXELS, compress, image_fields, instances_from_msg, label_image, message_to_numpy
from .synthetic_bag import SEMANTIC_TOPIC, write_semantic_bag
from .timeline import SequenceTimeline, stamp_to_ns

LABEL_ENCODINGS = ("auto",) + LabelDecoder.ENCODINGS
_ID_ENCODINGS = {"mono8", "8UC1", "mono16", "16UC1"}


@dataclass(frozen=True)
class TopicMap:
    """A semantic input topic, the topic its generated frames are written to and, optionally, the RGB
    camera topic whose frame starts each sequence (the reference)."""

    source: str
    target: str
    reference: str | None = None

    @classmethod
    def parse(cls, text: str) -> TopicMap:
        """`/semantic:/generated` or `/semantic:/generated:/rgb_camera`."""
        parts = str(text).split(":")
        if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
            raise InputError(f"--map expects SOURCE:TARGET[:REFERENCE] topic names, e.g. "
                             f"/camera/semantic:/camera/generated:/camera/rgb; got {text!r}")
        return cls(*(p.strip() for p in parts))


@dataclass
class ConvertOptions:
    maps: Sequence[TopicMap]
    label_encoding: str = "auto"  # auto: class ids for mono images, CARLA palette for colour ones
    label_space: str | None = None  # the space of class-id input (default: the model's)
    carla_version: str = "0.9.14"  # numbering of carla_raw tags
    compressed: bool = False  # also write <target>/compressed (JPEG)
    jpeg_quality: int = 90
    reset_gap_s: float = 1.0
    storage: str | None = None  # db3 | mcap; default: the input's
    typestore: str | None = None  # distribution of a bag without type definitions; default: its own, else humble
    max_frames: int | None = None  # stop after this many generated frames (the rest of the bag is not copied)
    max_megapixels: float = MAX_PIXELS / 1e6  # a png/jpeg declaring more is refused before decoding (bombs)
    reference_max_dt_s: float = MAX_DT_S  # a reference's header stamp is within this of the semantic frame's
    instances: dict[str, str] = field(default_factory=dict)  # semantic source -> its instance topic (exact stamps)

    def validate(self) -> None:
        if not self.maps:
            raise InputError("name at least one --map SOURCE:TARGET")
        for m in self.maps:
            check_topic_name(m.source, "--map source")
            check_topic_name(m.target, "--map target")
        sources = [m.source for m in self.maps]
        targets = [m.target for m in self.maps] + ([f"{m.target}/compressed" for m in self.maps]
                                                   if self.compressed else [])
        if len(set(sources)) != len(sources) or len(set(targets)) != len(targets):
            raise InputError("each --map needs its own source and target topic")
        if set(sources) & set(targets):
            raise InputError("a --map target may not be one of the source topics")
        for m in self.maps:
            if m.reference is not None:
                check_topic_name(m.reference, "--map reference")
                if m.reference in sources or m.reference in targets:
                    raise InputError(f"the --map reference {m.reference} is a semantic source or a target topic; "
                                     "name the RGB camera recorded beside the semantic one")
        for source, topic in self.instances.items():
            check_topic_name(topic, "--instances topic")
            if source not in sources:
                raise InputError(f"--instances names {source}, which no --map has as its source "
                                 f"(sources: {', '.join(sources)})")
            if topic in sources or topic in targets or topic in {m.reference for m in self.maps}:
                raise InputError(f"the instance topic {topic} is a semantic source, a target or a reference topic; "
                                 "name the instance camera recorded beside the semantic one")
        if len(set(self.instances.values())) != len(self.instances):
            raise InputError("each --instances needs its own instance topic")
        check_max_dt(self.reference_max_dt_s)
        if self.label_encoding not in LABEL_ENCODINGS:
            raise InputError(f"unknown label encoding {self.label_encoding!r}; choose from {', '.join(LABEL_ENCODINGS)}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise InputError(f"JPEG quality must be 1..100, got {self.jpeg_quality}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"the frame limit must be at least 1, got {self.max_frames}")
        if not (math.isfinite(self.max_megapixels) and self.max_megapixels > 0):
            raise InputError(f"the pixel limit must be a positive number of megapixels, got {self.max_megapixels}")
        if self.label_space is not None:
            get_label_space(self.label_space, "--label-space")
        SequenceTimeline(self.reset_gap_s)


@dataclass
class FrameEvent:
    """One generated frame, as `on_frame` callbacks see it (the demo builds its video from these)."""

    topic: str
    index: int  # position within the topic
    stamp_ns: int  # header stamp
    labels: np.ndarray  # HxW ids in the model's label space
    rgb: np.ndarray  # HxWx3 uint8, what was written
    new_sequence: str | None  # "first" | "backward" | "gap" when this frame started a sequence
    reference: np.ndarray | None = None  # the camera frame (RGB) this frame's sequence started from, on that frame
    instances: np.ndarray | None = None  # the instance ids the generator got with the labels (None: labels alone)
    camera: Callable[[], np.ndarray | None] = field(default=lambda: None, repr=False, compare=False)
    """The map's reference-topic frame at this frame's stamp (RGB), decoded when called; only during the
    callback. None without a reference topic or a matching frame."""


@dataclass
class ConvertResult:
    source: Path
    output: Path
    frames: dict[str, int]  # per source topic
    sequences: dict[str, int]
    messages: int  # written, copies and generated
    seconds: float
    synth_seconds: float  # of which inside the synthesizer
    references: dict[str, dict] = field(default_factory=dict)  # per source topic that names a reference topic
    instances: dict[str, dict] = field(default_factory=dict)  # per source topic with an instance topic

    @property
    def total_frames(self) -> int:
        return sum(self.frames.values())

    @property
    def fps(self) -> float:
        return self.total_frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Topic:
    """One mapped topic's state: decoder, sequence and output connections."""

    map: TopicMap
    stream: Any
    timeline: SequenceTimeline
    image_conn: Any
    compressed_conn: Any = None
    decoder: LabelDecoder | None = None
    cursor: ReferenceCursor | None = None
    instance_cursor: ReferenceCursor | None = None
    frames: int = 0
    sequences: int = 0
    from_reference: int = 0  # sequences started from a camera frame
    with_instances: int = 0  # frames generated with their instance ids
    instance_size_bad: int = 0  # instance images of another size than their labels
    first_size_bad: str | None = None

    def reference_counts(self) -> dict:
        """Sequences started from the camera and in first-frame mode, and the bad reference messages."""
        return {"topic": self.map.reference, "max_dt_s": self.cursor.max_dt_ns / 1e9,
                "from_reference": self.from_reference, "first_frame": self.sequences - self.from_reference,
                "bad": self.cursor.bad, "first_bad": self.cursor.first_bad}

    def instance_counts(self) -> dict:
        """Frames generated with their instance ids, without (no image of their exact stamp, or a bad one),
        and the bad instance messages (undecodable or of another size than the labels)."""
        c = self.instance_cursor
        return {"topic": c.topic, "paired": self.with_instances, "without": self.frames - self.with_instances,
                "bad": c.bad + self.instance_size_bad, "first_bad": c.first_bad or self.first_size_bad}

    def instances_for(self, labels: np.ndarray, stamp: int, bag_time: int) -> np.ndarray | None:
        """The ids of the instance image with exactly this stamp, None when there is none or it cannot serve."""
        ids = self.instance_cursor.image(stamp, bag_time)
        if ids is not None and ids.shape != labels.shape:
            self.instance_size_bad += 1
            self.first_size_bad = self.first_size_bad or (
                f"{self.instance_cursor.topic} at stamp {stamp // 10**9}.{stamp % 10**9:09d}: instance image {ids.shape[1]}x{ids.shape[0]} but "
                f"labels {labels.shape[1]}x{labels.shape[0]}")
            return None
        self.with_instances += ids is not None
        return ids


def resolve_label_encoding(choice: str, ros_encoding: str) -> str:
    """`auto` -> class ids for single-channel images, CARLA palette colours for colour images."""
    if choice != "auto":
        return choice
    return "ids" if ros_encoding in _ID_ENCODINGS else "carla_palette"


def _decoder_for(options: ConvertOptions, encoding: str, target_space: str) -> LabelDecoder:
    choice = resolve_label_encoding(options.label_encoding, encoding)
    return LabelDecoder(choice, target_space, options.label_space if choice == "ids" else None,
                        carla_version=options.carla_version)


def _read_labels(bag, msg, topic: _Topic, options: ConvertOptions, target_space: str):
    """(header, HxW ids in the model's space, stamp in ns) of a semantic message; errors name its position."""
    ros_msg = bag.decode(msg)
    try:
        array, encoding = label_image(ros_msg, int(options.max_megapixels * 1e6))
        if topic.decoder is None:
            topic.decoder = _decoder_for(options, encoding, target_space)
        return ros_msg.header, topic.decoder.decode(array, encoding), stamp_to_ns(ros_msg.header.stamp)
    except InputError as exc:
        raise InputError(f"{bag.path}: {bag.where(msg)}: {exc}") from None


def _write_generated(out, store, topic: _Topic, timestamp: int, header, rgb: np.ndarray, quality: int) -> int:
    """Write the generated frame (and its JPEG) with the input's header and bag time; returns the count."""

    out.write(topic.image_conn, timestamp,
              store.serialize_cdr(store.types[IMAGE](header=header, **image_fields(rgb, "rgb8")), IMAGE))
    if topic.compressed_conn is None:
        return 1
    fmt, jpeg = compress(rgb, "jpeg", quality)
    message = store.types[COMPRESSED_IMAGE](header=header, format=fmt, data=np.frombuffer(jpeg, np.uint8))
    out.write(topic.compressed_conn, timestamp, store.serialize_cdr(message, COMPRESSED_IMAGE))
    return 2


def convert_bag(src: str | os.PathLike, dest: str | os.PathLike, synth, options: ConvertOptions, *,
                overwrite: bool = False, progress: bool = True,
                on_frame: Callable[[FrameEvent], None] | None = None,
                checkpoint_name: str = "") -> ConvertResult:
    """Write `dest`: `src` plus generated topics (see the module docstring). `dest` appears only when
    complete; `src` is opened read-only. `on_frame` is called after each generated frame."""

    options.validate()
    start = time.perf_counter()
    synth_seconds = 0.0
    with BagReader(src, options.typestore) as bag, contextlib.ExitStack() as cursors:
        for m in options.maps:
            bag.require(m.source)
            if m.reference is not None:
                bag.require(m.reference)
            if m.source in options.instances:
                bag.require(options.instances[m.source])
            if m.target in bag.topics or (options.compressed and f"{m.target}/compressed" in bag.topics):
                raise InputError(f"{bag.path} already has a topic {m.target}: choose another --map target")
        total = sum(bag.count(m.source) for m in options.maps)
        if options.max_frames:
            total = min(total, options.max_frames)
        store = bag.typestore
        target_space = synth.label_space.name
        with BagWriter(dest, options.storage or bag.storage, version=writer_version(bag.version),
                       overwrite=overwrite, inputs=[bag.path], compression=bag.compression) as out:
            copies = {c.id: out.copy_topic(c, store) for c in bag.connections}
            topics: dict[str, _Topic] = {}
            for m in options.maps:
                qos = next(c.ext.offered_qos_profiles for c in bag.connections if c.topic == m.source)
                topics[m.source] = _Topic(
                    m, synth.stream(), SequenceTimeline(options.reset_gap_s),
                    out.add_topic(m.target, IMAGE, store, qos=qos),
                    out.add_topic(f"{m.target}/compressed", COMPRESSED_IMAGE, store, qos=qos)
                    if options.compressed else None)
                if m.reference is not None:  # a reader of its own walks the camera beside this pass
                    topics[m.source].cursor = cursors.enter_context(ReferenceCursor(
                        bag.path, m.reference, typestore=options.typestore, max_dt_s=options.reference_max_dt_s,
                        max_pixels=int(options.max_megapixels * 1e6)))
                if m.source in options.instances:  # exact stamps, as the node pairs them
                    topics[m.source].instance_cursor = cursors.enter_context(ReferenceCursor(
                        bag.path, options.instances[m.source], typestore=options.typestore, max_dt_s=0.0,
                        max_pixels=int(options.max_megapixels * 1e6), decode=instances_from_msg))
            for key, value in bag.custom_data.items():
                out.set_custom_data(key, str(value))
            out.set_custom_data("svsgan.generated", json.dumps(
                {"maps": {m.source: m.target for m in options.maps}, "checkpoint": checkpoint_name,
                 **({"instances": dict(options.instances)} if options.instances else {})}))
            written = done = 0
            bar = _progress_bar(total, bag.path.name, progress)
            try:
                for msg in bag.messages():
                    topic = topics.get(msg.connection.topic)
                    if topic is not None and options.max_frames and done >= options.max_frames:
                        break
                    out.write(copies[msg.connection.id], msg.timestamp, msg.data)
                    written += 1
                    if topic is None:
                        continue
                    header, labels, stamp = _read_labels(bag, msg, topic, options, target_space)
                    reason = topic.timeline.observe(stamp)
                    reference = None
                    if reason is not None:
                        if topic.cursor is not None:
                            reference = topic.cursor.image(stamp, msg.timestamp)
                            topic.from_reference += reference is not None
                        synth.reset(reference_image=reference, stream=topic.stream)
                        topic.sequences += 1
                    instances = None
                    t0 = time.perf_counter()
                    if topic.instance_cursor is None:  # single-topic maps call the model as before instances
                        rgb = synth.step(labels, stream=topic.stream)
                    else:
                        instances = topic.instances_for(labels, stamp, msg.timestamp)
                        t0 = time.perf_counter()
                        rgb = synth.step(labels, stream=topic.stream, instances=instances)
                    synth_seconds += time.perf_counter() - t0
                    written += _write_generated(out, store, topic, msg.timestamp, header, rgb, options.jpeg_quality)
                    topic.frames += 1
                    done += 1
                    if bar is not None:
                        bar.update(1)
                    if on_frame is not None:
                        cursor, bag_time = topic.cursor, msg.timestamp
                        event = FrameEvent(topic.map.source, topic.frames - 1, stamp, labels, rgb, reason, reference,
                                           instances)
                        if cursor is not None:
                            event.camera = lambda: cursor.image(stamp, bag_time, count=False)
                        on_frame(event)
            finally:
                if bar is not None:
                    bar.close()
            output = out.commit()
    return ConvertResult(Path(src), output, {s: t.frames for s, t in topics.items()},
                         {s: t.sequences for s, t in topics.items()}, written,
                         time.perf_counter() - start, synth_seconds,
                         {s: t.reference_counts() for s, t in topics.items() if t.cursor is not None},
                         {s: t.instance_counts() for s, t in topics.items() if t.instance_cursor is not None})


def _progress_bar(total: int, name: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="frame", dynamic_ncols=True, smoothing=0.1)


# --------------------------------------------------------------------------------------------------
# Overhead of conversion over the bare synthesizer


def measure_conversion_overhead(synth=None, *, checkpoint: str | os.PathLike | None = None, preset: str = "tiny",
                                frames: int = 40, height: int = 256, width: int = 512, storage: str = "mcap",
                                compressed: bool = False, repeats: int = 2, seed: int = 0,
                                workdir: str | os.PathLike | None = None) -> dict:
    """Conversion frames/s against bare `synth.step` frames/s on the same frames, in one process.

    The input is a CARLA-style bag of `frames` palette-encoded semantic frames (bgra8, with /clock
    and camera_info, svsgan_core.io.synthetic_bag). "Bare" steps the synthesizer over the already
    decoded label maps; "conversion" is the whole `convert_bag` (read, decode, step, encode, write,
    copy, commit). Runs alternate and the best of `repeats` counts for each, which damps the noise of
    a shared machine. Returns a JSON-ready dict; overhead_pct = (t_convert / t_bare - 1) * 100, and
    outside_model_pct = the conversion's own time outside `synth.step` over its time inside it, a
    within-run figure that other processes' load cannot tilt as much.
    """


    if synth is None:
        synth = (VideoSynthesizer.from_checkpoint(checkpoint) if checkpoint is not None
                 else VideoSynthesizer.from_preset(preset))
    options = ConvertOptions([TopicMap(SEMANTIC_TOPIC, "/svsgan/generated")], "carla_palette", compressed=compressed)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="svsgan-bench-") as tmp:
        src = write_semantic_bag(Path(tmp) / "input", frames=frames, height=height, width=width, seed=seed,
                                 storage=storage)
        decoder = LabelDecoder("carla_palette", synth.label_space.name)
        with BagReader(src) as bag:
            model_labels = [decoder.decode(*message_to_numpy(bag.decode(m))) for m in bag.messages([SEMANTIC_TOPIC])]
        synth.reset()
        for ids in model_labels[:2]:  # first calls build the backend's kernels for these shapes
            synth.step(ids)
        bare, convert, outside = [], [], []
        for r in range(max(1, repeats)):
            synth.reset()
            t0 = time.perf_counter()
            for ids in model_labels:
                synth.step(ids)
            bare.append(time.perf_counter() - t0)
            result = convert_bag(src, Path(tmp) / f"out{r}", synth, options, progress=False)
            convert.append(result.seconds)
            outside.append((result.seconds - result.synth_seconds) / result.synth_seconds * 100)
        t_bare, t_convert = min(bare), min(convert)
    return {
        "frames": frames,
        "input_size": [height, width],
        "model_resolution": list(synth.resolution),
        "label_space": synth.label_space.name,
        "storage": storage,
        "compressed_topic": compressed,
        "device": str(synth.device),
        "threads": torch.get_num_threads(),
        "repeats": max(1, repeats),
        "bare_fps": frames / t_bare,
        "convert_fps": frames / t_convert,
        "overhead_pct": (t_convert / t_bare - 1) * 100,
        "outside_model_pct": min(outside),
        "bare_seconds": bare,
        "convert_seconds": convert,
    }
