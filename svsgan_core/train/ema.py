"""Exponential moving average of the generator: the weights a checkpoint ships for inference."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """decay_n = min(decay, (1 + n) / (10 + n)) after n updates: the warm-up keeps the average from
    being stuck at the random initialisation in short runs. Buffers (spectral-norm vectors) are copied."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)
