"""The two kinds of discriminator (Section 3.2).

D_I, `OASISDiscriminator`: a U-Net segmenter with N+1 outputs (N classes + "fake"), trained with
the OASIS loss, so its feedback is per pixel and per class.

D_V, `TemporalDiscriminator`: a patch discriminator over 3 frames. It is conditioned on the three
frames' semantic maps, not on optical flow: label maps exist for real and generated clips alike and
at every temporal scale (flow would have to be estimated between frames 3 apart, and its errors
would leak into the judgement), and they tell D_V where each object should be, so it can judge
whether appearance moves with the layout rather than only whether the clip flickers.
Two instances look at two temporal scales: consecutive frames and every third frame.

Instance edges (`ModelConfig.instance_edges`, issue 24): D_V gets each frame's boundary map beside its
one-hot, as the generator does. D_I, which the paper gives the image alone (its labels are its *target*,
not an input), then gets the boundary map as a fourth input channel: without it D_I cannot know that a
seam belongs between two touching cars of one class (the segmentation it is trained to output is the
same on both), so it could neither reward a seam there nor punish one painted across a single car.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..data.instances import boundary_map
from .config import ModelConfig
from .generator import one_hot


def _sn_conv(cin: int, cout: int, k: int = 3, stride: int = 1, padding: int = 1) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, stride=stride, padding=padding))


class ResBlockD(nn.Module):
    """Residual block with spectral norm; `scale` -1 halves, +1 doubles, 0 keeps the resolution."""

    def __init__(self, cin: int, cout: int, scale: int):
        super().__init__()
        self.scale = scale
        self.conv1 = _sn_conv(cin, cout)
        self.conv2 = _sn_conv(cout, cout)
        self.skip = _sn_conv(cin, cout, 1, padding=0) if cin != cout else nn.Identity()
        self.act = nn.LeakyReLU(0.2)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale < 0:
            return F.avg_pool2d(x, 2)
        if self.scale > 0:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale > 0:
            x = self._resize(x)
        h = self.conv2(self.act(self.conv1(self.act(x))))
        s = self.skip(x)
        if self.scale < 0:
            h, s = self._resize(h), self._resize(s)
        return h + s


class OASISDiscriminator(nn.Module):
    """U-Net encoder-decoder that segments an image into N classes + 1 fake class, per pixel.

    With `edges` the instance-boundary map is a fourth input channel beside RGB (see the module doc)."""

    def __init__(self, num_classes: int, channels: list[int], edges: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.edge_channels = int(edges)
        self.encoder = nn.ModuleList()
        prev = 3 + self.edge_channels
        for c in channels:
            self.encoder.append(ResBlockD(prev, c, -1))
            prev = c
        self.decoder = nn.ModuleList()
        skips = list(reversed(channels[:-1])) + [0]
        dec_out = list(reversed(channels[:-1])) + [channels[0]]
        for skip, c in zip(skips, dec_out):
            self.decoder.append(ResBlockD(prev, c, +1))
            prev = c + skip
        self.head = nn.Conv2d(prev, num_classes + 1, 1)

    def forward(self, image: torch.Tensor, edges: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """image Bx3xHxW in [-1, 1] (and, with an edge channel, its boundary map edges Bx1xHxW) -> logits
        Bx(N+1)xHxW, intermediate features (feature matching). Edges given to a D_I without the channel
        are ignored."""
        x = image
        if self.edge_channels:
            if edges is None:
                raise ValueError("this D_I has an instance-edge input channel: pass the frames' boundary maps")
            x = torch.cat((image, edges.reshape(image.shape[0], 1, *image.shape[2:]).to(image.dtype)), 1)
        feats = []
        for block in self.encoder:
            x = block(x)
            feats.append(x)
        skips = list(reversed(feats[:-1]))
        for i, block in enumerate(self.decoder):
            x = block(x)
            feats.append(x)
            if i < len(skips):
                x = torch.cat((x, skips[i]), 1)
        return self.head(x), feats


class TemporalDiscriminator(nn.Module):
    """Patch discriminator over `frames` consecutive samples of a clip, conditioned on their labels."""

    def __init__(self, num_classes: int, channels: list[int], frames: int = 3, downsample: int = 2,
                 edges: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.frames = frames
        self.downsample = downsample
        self.edge_channels = int(edges)
        layers, prev = [], frames * (3 + num_classes + self.edge_channels)
        for i, c in enumerate(channels):
            layers.append(nn.Sequential(_sn_conv(prev, c, 4, stride=2 if i < len(channels) - 1 else 1, padding=1),
                                        nn.LeakyReLU(0.2)))
            prev = c
        self.layers = nn.ModuleList(layers)
        self.head = _sn_conv(prev, 1, 4, padding=1)

    def forward(self, frames: torch.Tensor, labels: torch.Tensor,
                edges: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """frames BxTx3xHxW in [-1, 1], labels BxTxHxW ids -> patch logits, features. With an edge
        channel: edges BxTx1xHxW (or BxTxHxW) boundary maps, None for the labels' own edges."""
        b, t, _, h, w = frames.shape
        if t != self.frames:
            raise ValueError(f"TemporalDiscriminator expects {self.frames} frames, got {t}")
        seg = one_hot(labels.reshape(b * t, h, w), self.num_classes).reshape(b, t * self.num_classes, h, w)
        parts = [frames.reshape(b, t * 3, h, w), seg]
        if self.edge_channels:
            parts.append((boundary_map(labels) if edges is None else edges).reshape(b, t, h, w).to(seg.dtype))
        x = torch.cat(parts, 1)
        if self.downsample > 1:
            x = F.avg_pool2d(x, self.downsample)
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return self.head(x), feats


class VideoDiscriminators(nn.Module):
    """The two D_V of the paper, one per temporal scale (frame strides `cfg.dv_strides`)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.strides = list(cfg.dv_strides)
        self.frames = cfg.dv_frames
        self.nets = nn.ModuleList(
            TemporalDiscriminator(cfg.num_classes, cfg.dv_channels, cfg.dv_frames, cfg.dv_downsample,
                                  cfg.instance_edges)
            for _ in self.strides
        )

    def span(self, k: int) -> int:
        """Number of consecutive frames a clip for scale k covers."""
        return (self.frames - 1) * self.strides[k] + 1

    def clips(self, k: int, *sequences: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All windows of scale k in each sequence (BxTx...: frames, labels, edges), stacked along the batch."""
        span, s = self.span(k), self.strides[k]
        t = sequences[0].shape[1]
        if t < span:
            return tuple(x[:, :0] for x in sequences)
        starts = range(0, t - span + 1)
        return tuple(torch.cat([x[:, i:i + span:s] for i in starts], 0) for x in sequences)

    def forward(self, frames: torch.Tensor, labels: torch.Tensor,
                edges: torch.Tensor | None = None) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """Scores for every scale whose span fits in the sequence; scales that do not fit are skipped."""
        out = []
        for k, net in enumerate(self.nets):
            f, y, *e = self.clips(k, frames, labels, *(() if edges is None else (edges,)))
            if f.shape[1] == self.frames and f.shape[0] > 0:
                out.append(net(f, y, *e))
        return out
