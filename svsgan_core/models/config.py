"""One configuration dataclass for the SVS-GAN networks, and the named presets.

Channel lists run finest level first: level l works at (height / 2**l, width / 2**l). The generator's
three pyramids (image encoder, semantic encoder, SPADE decoder) share these levels; progressive
growing prepends a level, doubling the output resolution.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InputError

# The floating-point precisions every part accepts (inference, training, the node), by name.
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# How the previous frame is resampled along the flow (torch grid_sample modes that ONNX GridSample also has).
WARP_MODES = ("bilinear", "bicubic")


_KINDS = {bool: "true or false", int: "a whole number (at least 1)", str: "a name",
          list: "a list of whole numbers of at least 1"}


@dataclass
class ModelConfig:
    label_space: str = "cityscapes"
    num_classes: int = 19
    height: int = 256
    width: int = 512
    # generator pyramids, finest level first
    dec_channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024, 1024])
    img_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512, 512])
    sem_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512, 512])
    bottleneck_channels: int = 64  # DP-GAN style global context, concatenated to every level
    spade_hidden: int = 128
    # flow + occlusion network
    flow_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    flow_res_blocks: int = 4
    flow_downsample: int = 2  # the flow net runs at 1/flow_downsample of the output resolution
    # discriminators
    d_channels: list[int] = field(default_factory=lambda: [64, 128, 128, 256, 256, 512])
    dv_channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    dv_frames: int = 3
    dv_strides: list[int] = field(default_factory=lambda: [1, 3])  # the two temporal scales
    dv_downsample: int = 2  # D_V looks at half-resolution clips
    # how the occlusion map balances generated and carried content (models/generator.py, docs/training.md)
    normalise_skips: bool = False  # True: image skips go through SPADE's instance norm with the decoder features
    occlusion_composite: bool = True  # output = OC * generated + (1 - OC) * WI_{i-1}
    carry_refine: bool = False  # with the composite: + a residual from the decoder everywhere (it may sharpen the carry)
    detail_from_decoder: bool = False  # with the composite: its low frequencies, the decoder output's high ones
    warp_mode: str = "bilinear"  # how WI_{i-1} samples I_{i-1}: bilinear | bicubic (less blur per frame)
    class_colour: bool = False  # + a per-class colour (1x1 conv of the one-hot) before to_rgb's tanh: crisp class edges
    # with class_colour: a class present in I_{i-1} takes its mean colour there instead of the learnt one, so
    # the reference's colours reach every later frame without the flow (models/generator.py, issue 23)
    class_palette: bool = False
    palette_cells: int = 0  # > 0: local means over 5x5 cells of a grid this many cells wide (0: whole-frame means)
    # > 0: with class_palette, up to this many objects of the palette's source frame (by instance id) start at their
    # own mean colour there, so two touching cars keep two colours (issue 24; 0: class colours only)
    palette_instances: int = 0
    # + a binary instance-boundary map (pix2pixHD; data/instances.boundary_map) beside the one-hot wherever the
    # labels condition a network: flow net, semantic encoder, SPADE, class colour, both discriminators (issue 24)
    instance_edges: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @property
    def levels(self) -> int:
        return len(self.dec_channels)

    def validate(self) -> None:
        for f in dataclasses.fields(self):  # types first: a YAML 1e9 or 256.0 must not reach the layers
            value = getattr(self, f.name)
            kind = list if f.default_factory is not dataclasses.MISSING else type(f.default)
            if kind is list:
                ok = isinstance(value, list) and all(type(v) is int and v >= 1 for v in value)
            else:  # bool, int (at least 1; flow_res_blocks may be 0) or str, exactly
                least = 0 if f.name in ("flow_res_blocks", "palette_cells", "palette_instances") else 1
                ok = type(value) is kind and (kind is not int or value >= least)
            if not ok:
                raise InputError(f"{f.name} must be {_KINDS[kind]}, got {value!r}")
        n = self.levels
        if n < 1:
            raise InputError("dec_channels must name at least one level")
        if len(self.img_channels) != n or len(self.sem_channels) != n:
            raise InputError(
                f"img_channels ({len(self.img_channels)}), sem_channels ({len(self.sem_channels)}) and "
                f"dec_channels ({n}) must have one entry per level"
            )
        div = 2 ** (n - 1)
        if self.height % div or self.width % div:
            raise InputError(f"height x width {self.height}x{self.width} must be divisible by 2**(levels-1) = {div}")
        fdiv = self.flow_downsample * 2 ** len(self.flow_channels)
        if self.height % fdiv or self.width % fdiv:
            raise InputError(f"height x width {self.height}x{self.width} must be divisible by {fdiv} for the flow net")
        if self.num_classes < 1:
            raise InputError("num_classes must be positive")
        if self.class_palette and not self.class_colour:
            raise InputError("class_palette replaces class_colour's learnt colours: set class_colour: true with it")
        if self.palette_instances and not self.class_palette:
            raise InputError("palette_instances gives objects their own palette colour: set class_palette: true with it")
        if self.warp_mode not in WARP_MODES:
            raise InputError(f"warp_mode must be one of {', '.join(WARP_MODES)}, not {self.warp_mode!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)

    def grown(self, img_channels: int | None = None, sem_channels: int | None = None) -> "ModelConfig":
        """The configuration after one progressive-growing step: a new finest level, twice the size.

        The new level's decoder width equals the old finest one, so the trained to-RGB layer still fits.
        """
        d = self.to_dict()
        d["height"], d["width"] = 2 * self.height, 2 * self.width
        d["dec_channels"] = [self.dec_channels[0]] + self.dec_channels
        d["img_channels"] = [img_channels or self.img_channels[0]] + self.img_channels
        d["sem_channels"] = [sem_channels or self.sem_channels[0]] + self.sem_channels
        d["flow_downsample"] = 2 * self.flow_downsample
        return ModelConfig(**d)


def _paper_512() -> ModelConfig:
    return ModelConfig(label_space="cityscapes", num_classes=19, height=256, width=512)


PRESETS: dict[str, Any] = {
    # small enough for CPU tests and the bundled demo checkpoint
    "tiny": lambda: ModelConfig(
        height=64, width=128,
        dec_channels=[32, 32, 64, 64], img_channels=[16, 16, 32, 32], sem_channels=[16, 16, 32, 32],
        bottleneck_channels=16, spade_hidden=32, flow_channels=[16, 32], flow_res_blocks=1,
        flow_downsample=2, d_channels=[16, 32, 32, 64], dv_channels=[16, 32, 64],
    ),
    # between tiny and the paper: tiny's 128x64 with twice its channels and a fifth level (a wider
    # receptive field); 7.2 M generator parameters (tiny 1.0 M, 512x256 105 M), ~4x tiny's FLOPs per
    # frame, still trainable on a CPU: for when tiny's capacity is the limit
    "small": lambda: ModelConfig(
        height=64, width=128,
        dec_channels=[64, 64, 128, 128, 256], img_channels=[32, 32, 64, 64, 128],
        sem_channels=[32, 32, 64, 64, 128], bottleneck_channels=32, spade_hidden=64,
        flow_channels=[32, 64, 128], flow_res_blocks=2, flow_downsample=2,
        d_channels=[32, 64, 64, 128, 128], dv_channels=[32, 64, 128],
    ),
    # the paper's base model (512x256) and the grown model (1024x512) of Section 4.1
    "512x256": _paper_512,
    "1024x512": lambda: _paper_512().grown(),
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]()
