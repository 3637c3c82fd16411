"""Pre-flight: what a model configuration will cost in memory, checked before anything is built.

A checkpoint's config.yaml can declare a network no machine holds (a billion classes, a million
channels, 4096x4096 frames): building it allocates gigabytes before anything fails. `check` counts
the parameters and the activations of one frame from the config alone (no tensor is made) and
refuses, with the numbers, what is over the limit: SVSGAN_MAX_MODEL_GIB, 16 GiB unless the user
raises it.

The counts follow the generator's layers (models/generator.py, models/flow.py) closely enough for a
limit (tests/test_hostile_inputs.py holds them against the built network), not to the byte: the
parameters within 10 %, the activations between the largest set of tensors alive at once during a
frame and four times it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..errors import CheckpointError, InputError
from ..models.config import ModelConfig

LIMIT_ENV = "SVSGAN_MAX_MODEL_GIB"
DEFAULT_LIMIT_GIB = 16.0  # the paper's largest model (2048x1024) needs a few GiB for inference


@dataclass(frozen=True)
class Estimate:
    parameters: int
    activation_bytes: int  # one frame, fp32, continuing mode (the larger one)

    @property
    def weight_bytes(self) -> int:
        return 4 * self.parameters

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cout * cin * k * k + (cout if bias else 0)


def _spade(channels: int, cond: int, hidden: int) -> int:
    return _conv(cond, hidden, 3) + 2 * _conv(hidden, channels, 3)


def estimate(cfg: ModelConfig) -> Estimate:
    """Parameters and one frame's activations of the generator `cfg` describes (see the module doc)."""
    n, b, levels = cfg.num_classes, cfg.bottleneck_channels, cfg.levels
    e = int(cfg.instance_edges)  # the boundary map beside each one-hot (flow net, semantic encoder, SPADE, colour)
    dec, img, sem = cfg.dec_channels, cfg.img_channels, cfg.sem_channels
    hidden = [min(cfg.spade_hidden, max(32, d)) for d in dec]
    params = 0
    # flow and occlusion net
    fc = cfg.flow_channels
    params += _conv(2 * (n + e), fc[0], 7)
    prev = fc[0]
    for c in fc:
        params += _conv(prev, c, 3)
        prev = c
    params += cfg.flow_res_blocks * 2 * _conv(prev, prev, 3)
    for c in reversed([fc[0]] + fc[:-1]):
        params += _conv(prev, c, 3)
        prev = c
    params += _conv(prev, 2, 3) + _conv(prev, 1, 3)
    # image and semantic pyramids, bottleneck, decoder input
    for cin, chans in ((3, img), (n + e, sem)):
        for l, c in enumerate(chans):
            params += _conv(cin, c, 3) + _conv(c, c, 3) + (_conv(chans[l - 1], c, 3) if l else 0)
    params += _conv(sem[-1], b, 1) + _conv(sem[-1] + img[-1], dec[-1], 3)
    # SPADE ResNet blocks and to_rgb
    for l in range(levels):
        cin, out, cond = dec[l] + img[l], dec[max(l - 1, 0)], sem[l] + b + 1 + e
        mid = min(cin, out)
        params += _spade(cin, cond, hidden[l]) + _conv(cin, mid, 3) + _spade(mid, cond, hidden[l]) + _conv(mid, out, 3)
        if cin != out:
            params += _spade(cin, cond, hidden[l]) + _conv(cin, out, 1, bias=False)
    params += _conv(dec[0], 3, 3)
    if cfg.class_colour:
        params += _conv(n + e, 3, 1, bias=False)
    if cfg.occlusion_composite and cfg.carry_refine:
        params += _conv(dec[0], 3, 3)

    # activations, in floats: what stays alive through the decoder (one-hot maps of both frames, the
    # conditions of every level twice, the gated skips, flow, occlusion, warped frame), the one-hot's
    # int64 temporaries, and the working set of the largest SPADE block
    pixels = [cfg.height * cfg.width / 4 ** l for l in range(levels)]
    alive = pixels[0] * (2 * (n + e) + 9) + sum(p * (2 * (sem[l] + b) + 1 + e + img[l]) for l, p in enumerate(pixels))
    one_hot = pixels[0] * 5 * n
    block = max(p * (hidden[l] + 5 * (dec[l] + img[l]) + 2 * dec[max(l - 1, 0)]) for l, p in enumerate(pixels))
    flow = pixels[0] / cfg.flow_downsample ** 2 * (4 * n + 3 * fc[0])
    activations = alive + max(one_hot, block, flow)
    return Estimate(int(params), int(4 * activations))


def limit_bytes() -> int:
    """The limit: SVSGAN_MAX_MODEL_GIB (GiB) if set, else DEFAULT_LIMIT_GIB."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return int(DEFAULT_LIMIT_GIB * 2**30)
    try:
        gib = float(text)
    except ValueError:
        gib = math.nan
    if not (math.isfinite(gib) and gib > 0):
        raise InputError(f"{LIMIT_ENV} must be a positive number of GiB, got {text!r}")
    return int(gib * 2**30)


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def check(cfg: ModelConfig, where: str) -> Estimate:
    """The estimate for `cfg`, or a CheckpointError naming both figures and the limit when weights plus
    one frame's activations would not fit in it. `where` names the config (a file) in the error."""
    est = estimate(cfg)
    limit = limit_bytes()
    if est.total_bytes > limit:
        raise CheckpointError(
            f"{where}: this model needs about {est.parameters:.3g} parameters ({_size(est.weight_bytes)} of "
            f"weights) and {_size(est.activation_bytes)} of activations per frame at {cfg.width}x{cfg.height}, "
            f"over the limit of {limit / 2**30:g} GiB; refused before anything was allocated. If this machine "
            f"really has the memory, raise the limit: {LIMIT_ENV}=<GiB>")
    return est
