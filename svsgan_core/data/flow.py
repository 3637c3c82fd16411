"""Pseudo-ground-truth optical flow for the flow loss, computed once with OpenCV DIS and cached.

The paper supervises the generator's flow with FlowNet2; that network cannot be used here, so DIS
(Kroeger et al. 2016, in OpenCV) stands in. Flow is computed once per dataset (`svsgan prepare-flow`)
and cached beside the data; users may supply their own flow files in the same format instead.

File convention (one file per frame i >= 1 of a sequence; frame 0 has none):
- ``flow``: h×w×2 float16, pixels, channel 0 = x (right), channel 1 = y (down). BACKWARD flow:
  I_i(x) ≈ I_{i-1}(x + flow(x)), so sampling frame i-1 at x + flow(x) (``grid_sample`` with
  align_corners=True, i.e. svsgan_core.models.flow.warp) gives frame i.
- ``conf``: h×w float16 in [0, 1], how far to trust each vector: forward-backward consistency of
  DIS (1 where the backward flow and the forward flow at its target cancel, towards 0 where they do
  not: occlusions, pixels leaving the frame, unreliable matches). Hand-made files may use all ones.
- Files may be stored smaller than the images (``--max-width``): vectors are in pixels of the
  file's own grid, and loaders resample them to the size they need, scaling the vectors with it.
Where the files live depends on the layout (svsgan_core.data.layouts): ``<sequence>/flow/<stem>.npz``
in the generic layout.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..errors import InputError
from .layouts import read_image

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# forward-backward check (Sundaram et al. 2010): a vector is consistent when
# |f_b(x) + f_f(x + f_b(x))|^2 < ALPHA (|f_b|^2 + |f_f|^2) + BETA; confidence decays past that bound
CONSISTENCY_ALPHA = 0.01
CONSISTENCY_BETA = 0.5


class DisFlow:
    """DIS flow between consecutive RGB frames, with its forward-backward confidence."""

    def __init__(self, preset: str = "medium"):
        if preset not in PRESETS:
            raise InputError(f"unknown DIS preset {preset!r}; choose from {', '.join(PRESETS)}")
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])

    def __call__(self, previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(backward flow h×w×2 float32, confidence h×w float32) for frame `current` against `previous`."""
        if previous.shape != current.shape:
            raise InputError(f"consecutive frames differ in size: {previous.shape} and {current.shape}")
        prev_gray, cur_gray = _gray(previous), _gray(current)
        backward = self._dis.calc(cur_gray, prev_gray, None)
        forward = self._dis.calc(prev_gray, cur_gray, None)
        return backward, consistency(backward, forward)


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        raise InputError(f"flow needs uint8 frames, got {frame.dtype}")
    return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame)


def consistency(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Soft forward-backward consistency in [0, 1]: exp(-violation / bound), 0 outside the frame."""
    h, w = backward.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = xs + backward[..., 0], ys + backward[..., 1]
    forward_there = cv2.remap(forward, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    violation = ((backward + forward_there) ** 2).sum(-1)
    bound = CONSISTENCY_ALPHA * ((backward**2).sum(-1) + (forward_there**2).sum(-1)) + CONSISTENCY_BETA
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return (np.exp(-violation / bound) * inside).astype(np.float32)


def save_flow(path: Path, flow: np.ndarray, conf: np.ndarray) -> None:
    """Write one flow file (float16, compressed), atomically so interrupted runs leave no partial file."""
    flow, conf = np.asarray(flow), np.asarray(conf)
    if flow.ndim != 3 or flow.shape[2] != 2 or conf.shape != flow.shape[:2]:
        raise InputError(f"{path}: flow must be h×w×2 with an h×w confidence, got {flow.shape} and {conf.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, flow=flow.astype(np.float16), conf=np.clip(conf, 0, 1).astype(np.float16))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)


def load_flow(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(flow h×w×2 float32, conf h×w float32) from a flow file; InputError naming the file when unusable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"flow file {path} does not exist; run `svsgan prepare-flow` on the dataset "
                         f"(or supply flow files in the format of docs/datasets.md)")
    try:
        with np.load(path) as data:
            flow = data["flow"].astype(np.float32)
            conf = data["conf"].astype(np.float32) if "conf" in data else np.ones(flow.shape[:2], np.float32)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"cannot read flow file {path}: {exc}") from None
    if flow.ndim != 3 or flow.shape[2] != 2 or conf.shape != flow.shape[:2]:
        raise InputError(f"flow file {path}: expected flow h×w×2 and conf h×w, got {flow.shape} and {conf.shape}")
    if not np.isfinite(flow).all():
        raise InputError(f"flow file {path} holds non-finite vectors")
    return flow, conf


def resize_flow(flow: np.ndarray, conf: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resample flow and confidence to `size` (width, height), scaling the vectors with the grid."""
    h, w = flow.shape[:2]
    if (w, h) == tuple(size):
        return flow, conf
    flow = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR)
    flow[..., 0] *= size[0] / w
    flow[..., 1] *= size[1] / h
    return flow, cv2.resize(conf, size, interpolation=cv2.INTER_LINEAR)


def prepare_flow(sequences, overwrite: bool = False, max_width: int | None = None, preset: str = "medium",
                 progress: bool = True) -> dict[str, int]:
    """Compute and cache the flow of every frame i >= 1 of `sequences` (svsgan_core.data.layouts).

    Existing files are kept unless `overwrite`, so an interrupted run resumes where it stopped.
    `max_width` computes (and stores) flow on frames downscaled to at most that width.
    Returns counts: {"written": n, "skipped": m}.
    """
    estimator = DisFlow(preset)
    todo = [(seq, i) for seq in sequences for i in range(1, len(seq.frames))]
    counts = {"written": 0, "skipped": 0}
    cached: tuple[Path, np.ndarray] | None = None
    with tqdm(todo, desc="flow", unit="frame", disable=not progress) as bar:
        for seq, i in bar:
            frame = seq.frames[i]
            if frame.flow.is_file() and not overwrite:
                counts["skipped"] += 1
                continue
            if cached is not None and cached[0] == seq.frames[i - 1].image:
                previous = cached[1]
            else:
                previous = _for_flow(read_image(seq.frames[i - 1].image), max_width)
            current = _for_flow(read_image(frame.image), max_width)
            if previous.shape != current.shape:
                raise InputError(f"{frame.image} is {current.shape[1]}x{current.shape[0]} but the frame before it, "
                                 f"{seq.frames[i - 1].image}, is {previous.shape[1]}x{previous.shape[0]}")
            save_flow(frame.flow, *estimator(previous, current))
            cached = (frame.image, current)
            counts["written"] += 1
            bar.set_postfix_str(seq.name, refresh=False)
    return counts


def _for_flow(image: np.ndarray, max_width: int | None) -> np.ndarray:
    h, w = image.shape[:2]
    if max_width is None or w <= max_width:
        return image
    size = (max_width, max(1, round(h * max_width / w)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
