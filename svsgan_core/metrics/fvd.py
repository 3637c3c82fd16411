"""Frechet Video Distance: FVD_i3d (I3D Kinetics-400 logits) and FVD_cd (VideoMAE-v2 features).

The paper computes both "as implemented in" content-debiased FVD (Ge et al. 2024); these are its
conventions, kept fixed so numbers are comparable:
- clips of exactly CLIP_LENGTH = 16 consecutive frames (`split_clips`: non-overlapping windows from
  the first frame; a sequence shorter than 16 frames gives no clip);
- every frame resized to 224 x 224 with bilinear interpolation (torch, align_corners=False, no
  antialias, aspect ratio not kept, no crop) from its uint8 RGB values;
- I3D input scaled 2 x / 255 - 1 to [-1, 1]; features: the 400 logits averaged over time;
- VideoMAE input x / 255 in [0, 1] (cd-fvd applies no mean/std normalisation); features: the 1408-d
  `fc_norm` of the mean token;
- the Frechet distance of the two feature sets, exactly as for FID (`fid.fid_from_features`).
Weights come from user paths: `i3d_pretrained_400.pt` for FVD_i3d and
`vit_g_hybrid_pt_1200e_ssv2_ft.pth` for FVD_cd. The ViT-g has about 1B parameters (4 GB in float32)
and needs roughly 5 TFLOP per clip: use a GPU for FVD_cd on real evaluation sets.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, InputError
from .fid import fid_from_features
from .i3d import InceptionI3d
from .videomae import vit_giant_ssv2
from .weights import require_weights

CLIP_LENGTH = 16
FVD_SIZE = 224


def split_clips(video: np.ndarray, length: int = CLIP_LENGTH, stride: int | None = None) -> list[np.ndarray]:
    """Non-overlapping (or `stride`-spaced) windows of `length` frames from a T x H x W x 3 video."""
    stride = stride or length
    return [video[s:s + length] for s in range(0, len(video) - length + 1, stride)]


def _resize_clips(clips: np.ndarray) -> torch.Tensor:
    """N x T x H x W x 3 uint8 -> N x 3 x T x 224 x 224 float32 on the 0..255 scale."""
    if clips.ndim != 5 or clips.shape[-1] != 3 or clips.dtype != np.uint8:
        raise InputError(f"expected uint8 clips of shape N x T x H x W x 3, got {clips.shape} {clips.dtype}")
    if clips.shape[1] != CLIP_LENGTH:
        raise InputError(f"FVD clips have {CLIP_LENGTH} frames, got {clips.shape[1]}")
    n, t, h, w, _ = clips.shape
    x = torch.from_numpy(np.ascontiguousarray(clips)).reshape(n * t, h, w, 3).permute(0, 3, 1, 2).float()
    if (h, w) != (FVD_SIZE, FVD_SIZE):
        x = F.interpolate(x, size=(FVD_SIZE, FVD_SIZE), mode="bilinear", align_corners=False)
    return x.reshape(n, t, 3, FVD_SIZE, FVD_SIZE).transpose(1, 2)


def _load_state(path: str, what: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read the {what} weights {path!r}: {exc}") from exc
    for key in ("model", "module", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path!r} does not hold a state dict for the {what}")
    return state


def _load_into(net: torch.nn.Module, state: dict, path: str, what: str) -> None:
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.endswith("pos_embed")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(
            f"{path!r} does not match the {what} layout: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")


class _ClipFeatureExtractor:
    dim = 0

    def __init__(self, net: torch.nn.Module, device: str, batch_size: int):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.net = net.to(self.device).eval()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def extract(self, clips: np.ndarray) -> np.ndarray:
        """N x 16 x H x W x 3 uint8 RGB clips -> N x dim float64 features."""
        out = [np.zeros((0, self.dim))]
        for start in range(0, len(clips), self.batch_size):
            x = _resize_clips(clips[start:start + self.batch_size]).to(self.device)
            out.append(self._forward(x).double().cpu().numpy())
        return np.concatenate(out)


class I3DFeatureExtractor(_ClipFeatureExtractor):
    """FVD_i3d features from `i3d_pretrained_400.pt` (the VideoGPT/TATS/cd-fvd I3D state dict)."""

    dim = 400

    def __init__(self, weights: str | os.PathLike | None, device: str = "cpu", batch_size: int = 4):
        path = require_weights(weights, "i3d")
        net = InceptionI3d()
        _load_into(net, _load_state(path, "I3D network"), path, "I3D (InceptionI3d, 400 classes)")
        self.source = path
        super().__init__(net, device, batch_size)

    def _forward(self, x):
        return self.net(x * (2.0 / 255.0) - 1.0)


class VideoMAEFeatureExtractor(_ClipFeatureExtractor):
    """FVD_cd features from `vit_g_hybrid_pt_1200e_ssv2_ft.pth` (VideoMAE-v2 ViT-g/14, SSv2 fine-tuned)."""

    dim = 1408

    def __init__(self, weights: str | os.PathLike | None, device: str = "cpu", batch_size: int = 1):
        path = require_weights(weights, "videomae")
        state = _load_state(path, "VideoMAE-v2 network")
        net = vit_giant_ssv2()
        _load_into(net, state, path, "VideoMAE-v2 ViT-g/14 (SSv2 fine-tuned)")
        self.source = path
        super().__init__(net, device, batch_size)

    def _forward(self, x):
        return self.net.forward_features(x / 255.0)


def fvd_from_features(real, fake) -> float:
    return fid_from_features(real, fake)


def fvd(real_clips: np.ndarray, fake_clips: np.ndarray, extractor: _ClipFeatureExtractor) -> float:
    return fvd_from_features(extractor.extract(real_clips), extractor.extract(fake_clips))
