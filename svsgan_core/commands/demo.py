"""Run the whole pipeline on a bundled CARLA-style recording and show what it makes.

The bundled bag holds a short procedural street sequence as carla-ros-bridge publishes it: the
semantic camera in CARLA's CityScapesPalette (bgra8), /clock and camera_info. The demo runs it
through the same conversion code as `svsgan convert` with the bundled checkpoint and writes to
--out (default ./demo_output):

  bag/               the input bag plus the generated topic /svsgan/image (rgb8, input stamps)
  demo.mp4           labels | generated frames, side by side
  contact_sheet.png  a few of those pairs, one per row
  summary.txt        frames, frames/s and where the files are (also printed)

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


class _Recorder:
    """Builds the video and the contact sheet from the conversion's frames, as they come."""

    def __init__(self, video_path: Path, indices: set[int], space: str, fps: float):
        self.video_path, self.indices, self.space, self.fps = video_path, indices, space, fps
        self.writer = None
        self.rows: list[np.ndarray] = []
        self.frames = 0

    def __call__(self, event) -> None:
        from ..io.encoding import encode_palette

        pair = np.concatenate([encode_palette(event.labels, self.space), event.rgb], axis=1)
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
        half = self.rows[0].shape[1] // 2
        for text, x in (("labels (model input)", 6), ("generated", half + 6)):
            cv2.putText(header, text, (x, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        sheet = np.concatenate([header, *self.rows], axis=0)
        if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise InputError(f"cannot write {path}")


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
    recorder = _Recorder(video, indices, synth.label_space.name, _frame_rate(bag_path, topic))
    options = ConvertOptions([TopicMap(topic, OUTPUT_TOPIC)], args.label_encoding, args.label_space,
                             max_frames=args.frames)
    try:
        result = convert_bag(bag_path, out / "bag", synth, options, overwrite=True, progress=not args.no_progress,
                             on_frame=recorder, checkpoint_name=str(checkpoint))
    finally:
        recorder.close()
    video.replace(out / "demo.mp4")
    recorder.sheet(out / "contact_sheet.png")
    h, w = synth.resolution
    summary = (
        f"svsgan demo: converted {result.total_frames} frames of {topic} from {bag_path} with the checkpoint "
        f"{checkpoint} (model {w}x{h}, label space {synth.label_space.name}) on {synth.device}: "
        f"{result.fps:.1f} frames/s through the whole conversion ({result.seconds:.1f} s, of which "
        f"{result.synth_seconds:.1f} s in the generator), model load {load_seconds:.1f} s, "
        f"{time.perf_counter() - started:.1f} s in all (torch import included). The output bag {out / 'bag'} holds every input message "
        f"plus {OUTPUT_TOPIC} (one rgb8 frame per input frame, same stamps); the video {out / 'demo.mp4'} and "
        f"the contact sheet {out / 'contact_sheet.png'} show labels | generated side by side; this summary is "
        f"in {out / 'summary.txt'}."
    )
    (out / "summary.txt").write_text(summary + "\n")
    print(summary)
    return 0
