"""Temporal consistency without learned weights: the warping error of consecutive generated frames.

For each pair (i-1, i) the previous generated frame is backward-warped onto frame i with optical flow
and compared with the generated frame i on the pixels the flow can explain:
- flow: OpenCV DIS (medium preset) on grayscale frames. It is computed on the real video when there is
  one (the motion the generated video should follow), else on the generated frames (e.g. CARLA);
- convention: frame i ~= frame i-1 sampled at x + flow(x), flow = DIS(frame i -> frame i-1); sampling
  with `grid_sample`, bilinear, align_corners=True (pixel centres at integer coordinates, -1/+1 at the
  first/last pixel), border padding;
- occlusion mask: forward-backward consistency (Sundaram et al. 2010): x is kept when
  |f_b(x) + f_f(x + f_b(x))|^2 < 0.01 (|f_b|^2 + |f_f(x + f_b(x))|^2) + 0.5 and x + f_b(x) lies
  inside the frame;
- error: mean squared difference of RGB in [0, 1] over the kept pixels of a pair; the metric is the
  mean over all pairs (lower is better; 0 for a perfectly flow-consistent video).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from svsgan_core.errors import InputError

OCCLUSION_ALPHA = 0.01
OCCLUSION_BETA = 0.5


class FlowEstimator:
    """DIS optical flow; one OpenCV instance reused across calls."""

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM):
        self._dis = cv2.DISOpticalFlow_create(preset)

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """H x W x 2 float32 flow f with src(x) ~= dst(x + f(x)), from uint8 RGB (or gray) frames."""
        return self._dis.calc(_gray(src), _gray(dst), None)


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        raise InputError(f"flow needs uint8 frames, got {frame.dtype}")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


def _sampling_grid(flow: torch.Tensor) -> torch.Tensor:
    """N x H x W x 2 normalised grid for align_corners=True, from N x H x W x 2 pixel flow."""
    n, h, w, _ = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing="ij")
    gx = (xs + flow[..., 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[..., 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return torch.stack([gx, gy], dim=-1)


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample an H x W (x C) image at x + flow(x): bilinear, align_corners=True, border padding."""
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    if img.ndim == 2:
        img = img[..., None]
    grid = _sampling_grid(torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))[None])
    out = F.grid_sample(img.permute(2, 0, 1)[None], grid, mode="bilinear", padding_mode="border",
                        align_corners=True)
    out = out[0].permute(1, 2, 0).numpy()
    return out[..., 0] if np.ndim(image) == 2 else out


def occlusion_mask(flow_back: np.ndarray, flow_fwd: np.ndarray,
                   alpha: float = OCCLUSION_ALPHA, beta: float = OCCLUSION_BETA) -> np.ndarray:
    """H x W bool, True where frame i's pixel is visible in frame i-1.

    flow_back maps frame i to frame i-1 (i(x) ~= (i-1)(x + flow_back(x))); flow_fwd maps i-1 to i.
    """
    h, w = flow_back.shape[:2]
    fwd_at = backward_warp(flow_fwd, flow_back)
    total = flow_back + fwd_at
    consistent = (total ** 2).sum(-1) < alpha * ((flow_back ** 2).sum(-1) + (fwd_at ** 2).sum(-1)) + beta
    ys, xs = np.mgrid[0:h, 0:w]
    tx, ty = xs + flow_back[..., 0], ys + flow_back[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return consistent & inside


def warping_errors(frames: np.ndarray, flow_frames: np.ndarray | None = None,
                   flow: FlowEstimator | None = None) -> np.ndarray:
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
    flow = flow or FlowEstimator()
    errors = np.full(max(len(frames) - 1, 0), np.nan)
    for i in range(1, len(frames)):
        back = flow(motion[i], motion[i - 1])
        fwd = flow(motion[i - 1], motion[i])
        mask = occlusion_mask(back, fwd)
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
