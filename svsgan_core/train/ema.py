"""Exponential moving average of the generator: the weights a checkpoint ships for inference."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

# power iterations per EMA update, warm-started from the EMA's own vectors: the average moves by at
# most (1 - decay) of the live step per update, so a few keep sigma on the averaged weight
POWER_ITERATIONS = 3


def spectral_norm_parts(model: nn.Module):
    """(weight_orig, spectral-norm parametrization) of each spectral-normalised weight in `model`."""
    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            for p in m.parametrizations.weight:
                if hasattr(p, "_u") and hasattr(p, "_v"):
                    yield m.parametrizations.weight.original, p


@torch.no_grad()
def refresh_spectral_norm(model: nn.Module, iterations: int) -> None:
    """Power iterations on `model`'s own weight_orig, in place on its (u, v): what eval mode folds in."""
    for weight, sn in spectral_norm_parts(model):
        w = weight.permute(sn.dim, *(d for d in range(weight.ndim) if d != sn.dim)) if sn.dim else weight
        w = w.flatten(1).float()
        u, v = sn._u.float(), sn._v.float()
        for _ in range(iterations):
            u = F.normalize(torch.mv(w, v), dim=0, eps=sn.eps)
            v = F.normalize(torch.mv(w.t(), u), dim=0, eps=sn.eps)
        sn._u.copy_(u)
        sn._v.copy_(v)


class EMA:
    """decay_n = min(decay, (1 + n) / (10 + n)) after n updates: the warm-up keeps the average from
    being stuck at the random initialisation in short runs. Buffers are copied from the live model except
    the spectral-norm vectors: those of the live model belong to the live weights, so the EMA keeps its
    own and advances them on the averaged weights (otherwise the sigma folded at inference is another
    weight's)."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0
        own = {id(t) for _, sn in spectral_norm_parts(self.model) for t in (sn._u, sn._v)}
        self._copied = [i for i, b in enumerate(self.model.buffers()) if id(b) not in own]

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def warm_updates(self) -> int:
        """The update count from which the warm-up no longer lowers the decay: for an average that carries
        on from an earlier run (a resolution stage) rather than starting from random weights."""
        return max(0, math.ceil((10 * self.decay - 1) / max(1 - self.decay, 1e-12)))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        live = list(model.buffers())
        ema = list(self.model.buffers())
        for i in self._copied:
            ema[i].copy_(live[i])
        refresh_spectral_norm(self.model, POWER_ITERATIONS)
