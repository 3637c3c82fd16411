"""Optical flow + occlusion from two semantic maps (Figure 2, top) and backward warping.

Flow convention (shared with the pseudo-ground-truth flow cache): backward flow in pixels,
I_i(x) ~ I_{i-1}(x + flow(x)), so `warp(I_{i-1}, flow)` predicts I_i.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

_grid_cache: dict[tuple, torch.Tensor] = {}


def _base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (h, w, device, dtype)
    grid = _grid_cache.get(key)
    if grid is None:
        ys = torch.arange(h, device=device, dtype=dtype)
        xs = torch.arange(w, device=device, dtype=dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack((gx, gy), dim=0).unsqueeze(0)  # 1x2xHxW, (x, y) pixel coordinates
        if len(_grid_cache) > 16:
            _grid_cache.clear()
        _grid_cache[key] = grid
    return grid


def full_precision(tensor: torch.Tensor):
    """A context without autocast on `tensor`'s device (nothing to turn off where autocast has no
    such device, e.g. meta tensors in the FLOP counter)."""
    try:
        return torch.autocast(device_type=tensor.device.type, enabled=False)
    except RuntimeError:
        return contextlib.nullcontext()


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward-warp `image` (BxCxHxW) by `flow` (Bx2xHxW, pixels): out(x) = image(x + flow(x)).

    Bilinear (or bicubic: `mode`) with border padding; align_corners=True maps pixel centres exactly,
    so an integer flow moves pixels exactly. Differentiable in both arguments; plain grid_sample, no
    custom ops. Bicubic keeps more of the detail a sub-pixel shift blurs (a frame warped 30 times in a
    row keeps it or loses it 30 times) and can overshoot the input's range by a little.
    Grid and sampling are always fp32, outside autocast: in bf16 a coordinate near x = 1000 has a
    step of 4 px (a 0.3 px shift was sampled 3.3 px off at width 1024), in fp16 0.5 px. The result
    comes back in the image's dtype.
    """
    b, _, h, w = image.shape
    with full_precision(image):
        coords = _base_grid(h, w, flow.device, torch.float32) + flow.float()
        gx = coords[:, 0] * (2.0 / max(w - 1, 1)) - 1.0
        gy = coords[:, 1] * (2.0 / max(h - 1, 1)) - 1.0
        grid = torch.stack((gx, gy), dim=-1)
        out = F.grid_sample(image.float(), grid, mode=mode, padding_mode="border", align_corners=True)
    return out.to(image.dtype)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.InstanceNorm2d(channels), nn.LeakyReLU(0.2, True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FlowOcclusionNet(nn.Module):
    """Encoder-decoder with ResNet blocks over one-hot (S_{i-1}, S_i) -> flow (pixels) and occlusion.

    Occlusion (after a sigmoid) is in [0, 1]; 1 marks pixels that must be newly generated (disoccluded
    or new objects); the net returns its logits.
    The net runs at 1/`downsample` resolution and its flow is upsampled (and rescaled) to full size.
    `num_classes` is the channels of one frame's input: N, or N + 1 where the generator appends the
    instance-boundary map to each one-hot (`ModelConfig.instance_edges`): the edge between two touching
    cars is where their motions may differ, which the one-hot alone cannot show.
    """

    def __init__(self, num_classes: int, channels: list[int], res_blocks: int, downsample: int = 1):
        super().__init__()
        self.downsample = downsample
        c0 = channels[0]
        self.stem = nn.Sequential(nn.Conv2d(2 * num_classes, c0, 7, padding=3), nn.LeakyReLU(0.2, True))
        down, prev = [], c0
        for c in channels:
            down += [nn.Conv2d(prev, c, 3, stride=2, padding=1), nn.InstanceNorm2d(c), nn.LeakyReLU(0.2, True)]
            prev = c
        self.down = nn.Sequential(*down)
        self.res = nn.Sequential(*[ResnetBlock(prev) for _ in range(res_blocks)])
        up = []
        for c in reversed([c0] + channels[:-1]):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(prev, c, 3, padding=1),
                   nn.InstanceNorm2d(c), nn.LeakyReLU(0.2, True)]
            prev = c
        self.up = nn.Sequential(*up)
        self.flow_head = nn.Conv2d(prev, 2, 3, padding=1)
        self.occlusion_head = nn.Conv2d(prev, 1, 3, padding=1)
        nn.init.zeros_(self.flow_head.weight)
        nn.init.zeros_(self.flow_head.bias)

    def forward(self, prev_onehot: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(flow Bx2xHxW in full-resolution pixels, occlusion *logits* Bx1xHxW), both fp32, from each
        frame's one-hot (with its boundary map appended, where the generator has one).

        Both heads run in fp32 outside autocast: half-precision pixel offsets of tens of pixels lose the
        sub-pixel part the warp needs (see `warp`), and a bf16 sigmoid rounds to exactly 1.0 above a
        logit of ~6, where its gradient (and a BCE on the probability) is zero, so an occluded pixel could
        never be reopened. Callers take `torch.sigmoid` of the logits; training uses BCE-with-logits.
        """
        x = torch.cat((prev_onehot, onehot), dim=1)
        if self.downsample > 1:
            x = F.avg_pool2d(x, self.downsample)
        x = self.up(self.res(self.down(self.stem(x))))
        # flow predicted in low-res pixels, scaled to full-res pixels (an integer factor: the same values,
        # and the ONNX graph keeps static shapes)
        up = dict(scale_factor=self.downsample, mode="bilinear", align_corners=False)
        with full_precision(x):
            x = x.float()
            flow = _conv_fp32(self.flow_head, x)
            logits = _conv_fp32(self.occlusion_head, x)
            if self.downsample > 1:
                flow = F.interpolate(flow, **up) * float(self.downsample)
                logits = F.interpolate(logits, **up)
        return flow, logits


def _conv_fp32(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv` applied in fp32 whatever its parameters' dtype (they stay fp32 under autocast anyway)."""
    return F.conv2d(x, conv.weight.float(), None if conv.bias is None else conv.bias.float(), padding=conv.padding)
