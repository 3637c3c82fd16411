"""What a run leaves behind for people: JSONL log, TensorBoard scalars, sample videos (MP4)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from ..io.encoding import encode_palette


class RunLog:
    """Scalars to <run>/log.jsonl (one JSON object per line) and, if installed, TensorBoard <run>/tb."""

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = Path(run_dir) / "log.jsonl"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("svsgan train: tensorboard is not installed; scalars go to log.jsonl only")
            else:
                self.writer = SummaryWriter(str(Path(run_dir) / "tb"))

    def scalars(self, step: int, values: dict[str, float], **fields) -> None:
        record = {"step": step, "time": round(time.time(), 3), **fields, **values}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k.replace("G_", "G/").replace("D_", "D/"), v, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def to_uint8(images) -> np.ndarray:
    """Tx3xHxW tensor in [-1, 1] -> TxHxWx3 uint8."""
    arr = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().cpu().numpy()
    return arr.transpose(0, 2, 3, 1)


def side_by_side(labels: np.ndarray, label_space: str, *rows_of_frames: np.ndarray) -> np.ndarray:
    """T frames of [labels | each video ...] concatenated left to right."""
    colours = np.stack([encode_palette(l, label_space) for l in labels])
    return np.concatenate([colours, *rows_of_frames], axis=2)


def write_video(path: Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """TxHxWx3 uint8 RGB -> H.264 MP4 with imageio-ffmpeg (cv2's mp4v as the fallback)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2  # yuv420p needs even sizes
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        h, w = h + pad_h, w + pad_w
    try:
        import imageio_ffmpeg
    except ImportError:
        vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for f in frames:
            vw.write(f[:, :, ::-1].copy())
        vw.release()
        return path
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=1, quality=8, ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    return path
