"""Temporal consistency without learned weights: the warping error of consecutive generated frames.

For each pair (i-1, i) the previous generated frame is backward-warped onto frame i with optical flow
and compared with the generated frame i on the pixels the flow can explain:
- flow: OpenCV DIS (medium preset, `svsgan_core.data.flow.DisFlow`, the same estimator as the
  pseudo-ground-truth flow cache) on grayscale frames. It is computed on the real video when there is
  one (the motion the generated video should follow), else on the generated frames (e.g. CARLA);
- convention: frame i ~= frame i-1 sampled at x + flow(x), flow = DIS(frame i -> frame i-1); sampling
  with `grid_sample`, bilinear, align_corners=True (pixel centres at integer coordinates, -1/+1 at the
  first/last pixel), border padding;
- occlusion mask: forward-backward consistency (Sundaram et al. 2010, `data.flow.consistency`): x is kept when
  |f_b(x) + f_f(x + f_b(x))|^2 < 0.01 (|f_b|^2 + |f_f(x + f_b(x))|^2) + 0.5 and x + f_b(x) lies
  inside the frame;
- error: mean squared difference of RGB in [0, 1] over the kept pixels of a pair; the metric is the
  mean over all pairs (lower is better; 0 for a perfectly flow-consistent video).
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from ..data.flow import DisFlow
from ..errors import InputError
from ..models.flow import warp

# consistency() is exp(-violation / bound); the hard Sundaram test "violation < bound" is conf > 1/e
VISIBLE_CONFIDENCE = math.exp(-1.0)


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample an H x W (x C) image at x + flow(x) with the model's own `warp` (the one convention)."""
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    if img.ndim == 2:
        img = img[..., None]
    f = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).permute(2, 0, 1)[None]
    out = warp(img.permute(2, 0, 1)[None], f)[0].permute(1, 2, 0).numpy()
    return out[..., 0] if np.ndim(image) == 2 else out


def warping_errors(frames: np.ndarray, flow_frames: np.ndarray | None = None,
                   flow: DisFlow | None = None) -> np.ndarray:
    """Per-pair warping error of a T x H x W x 3 uint8 RGB video (T - 1 values).

    `flow_frames` (same shape) supplies the motion; without it the generated frames do. A pair with no
    visible pixels yields NaN.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(f"expected a uint8 video T x H x W x 3, got {frames.shape} {frames.dtype}")
    motion = frames if flow_frames is None else np.asarray(flow_frames)
    if motion.shape[:3] != frames.shape[:3]:
        if motion.ndim != 4 or len(motion) != len(frames):
            raise InputError(f"flow video {motion.shape} does not match the generated video {frames.shape}")
        motion = np.stack([cv2.resize(m, frames.shape[2:0:-1], interpolation=cv2.INTER_AREA) for m in motion])
    flow = flow or DisFlow("medium")
    errors = np.full(max(len(frames) - 1, 0), np.nan)
    for i in range(1, len(frames)):
        back, conf = flow(motion[i - 1], motion[i])
        mask = conf > VISIBLE_CONFIDENCE
        if not mask.any():
            continue
        warped = backward_warp(frames[i - 1].astype(np.float32) / 255.0, back)
        diff = ((frames[i].astype(np.float32) / 255.0 - warped) ** 2).mean(-1)
        errors[i - 1] = float(diff[mask].mean())
    return errors


def warping_error(frames: np.ndarray, flow_frames: np.ndarray | None = None) -> float:
    """Mean warping error over the pairs of one video (see module doc)."""
    errors = warping_errors(frames, flow_frames)
    return float(np.nanmean(errors)) if np.isfinite(errors).any() else float("nan")
