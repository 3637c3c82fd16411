"""VideoMAE-v2 video ViT (Wang et al. 2023), written for svsgan, for FVD_cd features.

Content-debiased FVD (Ge et al. 2024, the implementation the SVS-GAN paper cites) uses the ViT-g/14
fine-tuned on Something-Something-v2 (`vit_g_hybrid_pt_1200e_ssv2_ft.pth`): 16 frames of 224 x 224,
tubelets of 2 x 14 x 14 (2048 tokens), 40 blocks of width 1408, 16 heads, MLP 6144, LayerNorm eps 1e-6,
fixed sine-cosine position table, no class token; the feature is `fc_norm(mean of the tokens)`, 1408-d.
Parameter names follow that checkpoint (`patch_embed.proj.weight`, `blocks.0.attn.qkv.weight`,
`blocks.0.attn.q_bias`, `blocks.0.attn.v_bias`, `fc_norm.weight`, `head.weight`, ...): the key
projection has no bias, as in BEiT-style attention.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """1 x n x dim table: even channels sin(pos / 10000^(2i/dim)), odd channels cos of the same angle."""
    exponent = 2 * (np.arange(dim) // 2) / dim
    angles = np.arange(n_position)[:, None] / np.power(10000, exponent)[None, :]
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return torch.tensor(angles, dtype=torch.float32).unsqueeze(0)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        q, k, v = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int, tubelet: int):
        super().__init__()
        self.proj = nn.Conv3d(3, dim, (tubelet, patch, patch), stride=(tubelet, patch, patch))

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VideoViT(nn.Module):
    def __init__(self, img_size: int = 224, patch: int = 14, frames: int = 16, tubelet: int = 2,
                 dim: int = 1408, depth: int = 40, heads: int = 16, mlp_ratio: float = 48 / 11,
                 num_classes: int = 174):
        super().__init__()
        self.img_size, self.frames = img_size, frames
        self.patch_embed = PatchEmbed(dim, patch, tubelet)
        n_tokens = (frames // tubelet) * (img_size // patch) ** 2
        self.register_buffer("pos_embed", sinusoid_table(n_tokens, dim), persistent=False)
        self.blocks = nn.ModuleList(Block(dim, heads, int(dim * mlp_ratio)) for _ in range(depth))
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x frames x img x img (values in [0, 1], see fvd.py) -> N x dim."""
        if tuple(x.shape[2:]) != (self.frames, self.img_size, self.img_size):
            raise ValueError(f"VideoMAE expects N x 3 x {self.frames} x {self.img_size} x {self.img_size}, "
                             f"got {tuple(x.shape)}")
        x = self.patch_embed(x) + self.pos_embed.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.fc_norm(x.mean(dim=1))

    def forward(self, x):
        return self.head(self.forward_features(x))


def vit_giant_ssv2() -> VideoViT:
    return VideoViT()

