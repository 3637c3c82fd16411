"""Run the whole pipeline on a bundled CARLA-style recording and show what it makes.

The bundled bag holds a short procedural street sequence as carla-ros-bridge publishes it: the
semantic camera in CARLA's CityScapesPalette (bgra8), /clock, camera_info and the RGB camera beside
it (JPEG). The demo runs it through the same conversion code as `svsgan convert` with the bundled
checkpoint and writes to --out (default ./demo_output):

  bag/               the input bag plus the generated topic /svsgan/image (rgb8, input stamps)
  demo.mp4           labels | camera | generated frames, side by side (no camera column without one)
  contact_sheet.png  a few of those rows
  summary.txt        frames, frames/s, which mode ran and where the files are (also printed)

Reference mode (the default when the bag has an RGB camera): each sequence starts from the camera
frame with the semantic frame's stamp, as `svsgan convert --map SOURCE:TARGET:REFERENCE` and the
node's reference_topic do, and the model goes on from it. The camera is the one carla-ros-bridge
names beside the semantic camera (.../semantic_segmentation_X/image -> .../rgb_X/image, or its
/compressed), as in the bundled bag; --reference-topic names another, --no-reference runs
first-frame mode (the model draws the first frame from the labels alone).

Your own data:
  svsgan demo --bag my_drive.mcap --topic /my/semantic/image --checkpoint my_checkpoint --out my_demo
(--frames N converts only the first N frames; --label-encoding as in `svsgan convert`.)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, InputError
from . import add_threads_argument

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_BAG = ASSETS / "demo_bag"
DEMO_CHECKPOINT = ASSETS / "demo_checkpoint"
OUTPUT_TOPIC = "/svsgan/image"
SHEET_ROWS = 6


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bag", default=str(DEMO_BAG), help="input bag (default: the bundled CARLA-style sequence)")
    p.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT),
                   help="checkpoint folder (default: the bundled demo checkpoint)")
    p.add_argument("--topic", default=None,
                   help="semantic image topic (default: the bundled bag's, or the bag's only image topic)")
    p.add_argument("--out", default="demo_output", help="output folder (default: ./demo_output)")
    p.add_argument("--frames", type=int, default=None, help="convert only the first N frames")
    camera = p.add_mutually_exclusive_group()
    camera.add_argument("--reference-topic", default=None, metavar="TOPIC",
                        help="RGB camera topic whose frame starts each sequence (default: the bag's camera beside "
                             "the semantic one, when it has one; see above)")
    camera.add_argument("--no-reference", action="store_true",
                        help="first-frame mode: the model draws the first frame from the labels alone")
    p.add_argument("--label-encoding", default="auto", choices=("auto", "ids", "carla_palette", "carla_raw"),
                   help="how the topic encodes classes (default: auto, see `svsgan convert --help`)")
    p.add_argument("--label-space", default=None, help="label space of class-id input (default: the model's)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_threads_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_checkpoint(path: Path) -> None:
    """Before any output is written: the bundled checkpoint's own advice, else the loader's checks (which
    also accept a training run folder, meaning its checkpoints/latest)."""
    from ..runtime.checkpoint import CONFIG_NAME, GENERATOR_NAME, checkpoint_dir

    if path.resolve() == DEMO_CHECKPOINT.resolve() and not (
            (path / CONFIG_NAME).is_file() and (path / GENERATOR_NAME).is_file()):
        raise CheckpointError(
            f"the bundled demo checkpoint is missing: expected {DEMO_CHECKPOINT} with config.yaml and "
            "generator.safetensors. It is trained by `svsgan train --config training/configs/synthetic_cpu.yaml` "
            "(the README gives the exact commands); or run the demo with --checkpoint YOUR_CHECKPOINT")
    folder = checkpoint_dir(path)
    for name in (CONFIG_NAME, GENERATOR_NAME):
        if not (folder / name).is_file():
            raise CheckpointError(f"no checkpoint at {folder}: {name} is missing")


def _pick_topic(bag_path: Path, topic: str | None) -> str:
    from ..io.bags import IMAGE_TYPES, BagReader
    from ..io.synthetic_bag import SEMANTIC_TOPIC

    with BagReader(bag_path) as bag:
        if topic:
            bag.require(topic)
            return topic
        if SEMANTIC_TOPIC in bag.topics:
            return SEMANTIC_TOPIC
        images = sorted(t for t, m in bag.topics.items() if m in IMAGE_TYPES)
        if len(images) == 1:
            return images[0]
        raise InputError(f"{bag_path} has {len(images)} image topics ({', '.join(images) or 'none'}); "
                         "name the semantic one with --topic")


def _pick_reference(bag_path: Path, topic: str, requested: str | None, disabled: bool) -> str | None:
    """The RGB camera topic whose frames start the sequences, or None for first-frame mode."""
    from ..io.bags import IMAGE_TYPES, BagReader

    if disabled:
        return None
    with BagReader(bag_path) as bag:
        if requested:
            bag.require(requested)
            return requested
        if "/semantic_segmentation_" in topic:  # carla-ros-bridge names each sensor by its role
            beside = topic.replace("/semantic_segmentation_", "/rgb_")
            return next((c for c in (beside, f"{beside}/compressed") if bag.topics.get(c) in IMAGE_TYPES), None)
    return None


class _Recorder:
    """Builds the video and the contact sheet from the conversion's frames, as they come."""

    def __init__(self, video_path: Path, indices: set[int], space: str, fps: float, camera: bool):
        self.video_path, self.indices, self.space, self.fps, self.camera = video_path, indices, space, fps, camera
        self.writer = None
        self.rows: list[np.ndarray] = []
        self.frames = 0

    def titles(self) -> list[str]:
        return ["labels (model input)"] + (["camera (reference)"] if self.camera else []) + ["generated"]

    def __call__(self, event) -> None:
        from ..io.encoding import encode_palette

        labels = encode_palette(event.labels, self.space)
        columns = [labels] + ([_fit(event.camera(), labels.shape)] if self.camera else []) + [event.rgb]
        pair = np.concatenate(columns, axis=1)
        if self.writer is None:
            self.writer = _VideoWriter(self.video_path, pair.shape[1], pair.shape[0], self.fps)
        self.writer.write(pair)
        if event.index in self.indices:
            self.rows.append(_caption(pair, f"frame {event.index}   t = {event.stamp_ns / 1e9:.2f} s"))
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def sheet(self, path: Path) -> None:
        import cv2

        header = np.full((24, self.rows[0].shape[1], 3), 255, np.uint8)
        titles = self.titles()
        column = self.rows[0].shape[1] // len(titles)
        for i, text in enumerate(titles):
            cv2.putText(header, text, (i * column + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        sheet = np.concatenate([header, *self.rows], axis=0)
        if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise InputError(f"cannot write {path}")


def _fit(camera: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The camera frame at the labels' size; a grey panel that says so where the bag has none."""
    import cv2

    h, w = shape[:2]
    if camera is None:
        panel = np.full((h, w, 3), 128, np.uint8)
        cv2.putText(panel, "no camera frame", (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        return panel
    return camera if camera.shape[:2] == (h, w) else cv2.resize(camera, (w, h), interpolation=cv2.INTER_AREA)


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = image.copy()
    cv2.putText(out, text, (5, out.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (5, out.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class _VideoWriter:
    """H.264 MP4 through imageio-ffmpeg (plays everywhere); OpenCV's MPEG-4 Part 2 where that is missing."""

    def __init__(self, path: Path, width: int, height: int, fps: float):
        self.size = (width + width % 2, height + height % 2)  # yuv420p needs even sides
        try:
            import imageio_ffmpeg
        except ImportError:
            import cv2

            self._cv = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, self.size)
            self._ff = None
        else:
            self._cv = None
            self._ff = imageio_ffmpeg.write_frames(str(path), self.size, fps=fps, codec="libx264",
                                                   pix_fmt_out="yuv420p", macro_block_size=1, quality=8,
                                                   ffmpeg_log_level="error")
            self._ff.send(None)

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape[1::-1] != self.size:
            rgb = np.pad(rgb, ((0, self.size[1] - rgb.shape[0]), (0, self.size[0] - rgb.shape[1]), (0, 0)), "edge")
        if self._ff is not None:
            self._ff.send(np.ascontiguousarray(rgb))
        else:
            import cv2

            self._cv.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._ff is not None:
            self._ff.close()
        else:
            self._cv.release()


def _frame_rate(bag_path: Path, topic: str) -> float:
    """Frames per second of `topic` from its bag times (the recording's rate), 20 if it cannot tell."""
    from ..io.bags import BagReader

    with BagReader(bag_path) as bag:
        times = [m.timestamp for m in bag.messages([topic])]
    steps = np.diff(times)
    steps = steps[steps > 0]
    return float(np.clip(1e9 / np.median(steps), 1, 120)) if steps.size else 20.0


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    from ..io.conversion import ConvertOptions, TopicMap, convert_bag
    from ..io.reference import describe
    from ..runtime.backend import set_threads
    from ..runtime.synthesizer import VideoSynthesizer

    bag_path, checkpoint, out = Path(args.bag).expanduser(), Path(args.checkpoint).expanduser(), Path(args.out)
    if not bag_path.exists():
        raise InputError(f"no bag at {bag_path}" + (" (the bundled demo bag is part of the package: reinstall "
                                                    "svsgan or run scripts/make_demo_bag.py)"
                                                    if bag_path.resolve() == DEMO_BAG.resolve() else ""))
    _check_checkpoint(checkpoint)
    if args.frames is not None and args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    set_threads(args.threads)
    topic = _pick_topic(bag_path, args.topic)
    reference = _pick_reference(bag_path, topic, args.reference_topic, args.no_reference)
    from ..io.bags import BagReader

    with BagReader(bag_path) as bag:
        total = bag.count(topic)
    if args.frames:
        total = min(total, args.frames)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    synth = VideoSynthesizer.from_checkpoint(checkpoint, args.device)
    load_seconds = time.perf_counter() - t0
    indices = set(np.linspace(0, total - 1, min(SHEET_ROWS, total)).round().astype(int).tolist())
    video = out / ".demo.partial.mp4"
    recorder = _Recorder(video, indices, synth.label_space.name, _frame_rate(bag_path, topic), reference is not None)
    options = ConvertOptions([TopicMap(topic, OUTPUT_TOPIC, reference)], args.label_encoding, args.label_space,
                             max_frames=args.frames)
    try:
        result = convert_bag(bag_path, out / "bag", synth, options, overwrite=True, progress=not args.no_progress,
                             on_frame=recorder, checkpoint_name=str(checkpoint))
    finally:
        recorder.close()
    video.replace(out / "demo.mp4")
    recorder.sheet(out / "contact_sheet.png")
    h, w = synth.resolution
    if reference is not None:
        mode = f"Reference mode: of {result.sequences[topic]} sequence(s), {describe(result.references[topic])}."
    else:
        mode = ("First-frame mode: the model drew the first frame from the labels alone ("
                + ("--no-reference" if args.no_reference else
                   f"the bag has no RGB camera beside {topic}; name one with --reference-topic") + ").")
    summary = (
        f"svsgan demo: converted {result.total_frames} frames of {topic} from {bag_path} with the checkpoint "
        f"{checkpoint} (model {w}x{h}, label space {synth.label_space.name}) on {synth.device}: "
        f"{result.fps:.1f} frames/s through the whole conversion ({result.seconds:.1f} s, of which "
        f"{result.synth_seconds:.1f} s in the generator), model load {load_seconds:.1f} s, "
        f"{time.perf_counter() - started:.1f} s in all (torch import included). {mode} The output bag "
        f"{out / 'bag'} holds every input message plus {OUTPUT_TOPIC} (one rgb8 frame per input frame, same "
        f"stamps); the video {out / 'demo.mp4'} and the contact sheet {out / 'contact_sheet.png'} show "
        f"{' | '.join(recorder.titles())} side by side; this summary is in {out / 'summary.txt'}."
    )
    (out / "summary.txt").write_text(summary + "\n")
    print(summary)
    return 0
