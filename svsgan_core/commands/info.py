"""Print a preset's or a checkpoint's model configuration and its parameter counts per component.

Examples:
  svsgan info --preset 1024x512
  svsgan info path/to/checkpoint
"""
from __future__ import annotations

import argparse
import json

from . import add_preset_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", help="checkpoint folder (config.yaml + generator.safetensors)")
    add_preset_argument(p, "a named configuration instead of a checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def parameter_counts(cfg) -> dict[str, int]:
    from ..models import OASISDiscriminator, SVSGenerator, VideoDiscriminators

    def n(m) -> int:
        return sum(p.numel() for p in m.parameters())

    g = SVSGenerator(cfg)
    return {
        "generator": n(g),
        "generator.flow_net": n(g.flow_net),
        "generator.image_encoder": n(g.image_encoder),
        "generator.semantic_encoder": n(g.semantic_encoder),
        "generator.decoder": n(g.decoder) + n(g.decoder_in) + n(g.to_rgb),
        "image_discriminator": n(OASISDiscriminator(cfg.num_classes, cfg.d_channels, cfg.instance_edges)),
        "video_discriminators": n(VideoDiscriminators(cfg)),
    }


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..models.config import preset

    if bool(args.checkpoint) == bool(args.preset):
        raise InputError("name either a checkpoint folder or --preset NAME")
    meta = {}
    if args.preset:
        cfg, source = preset(args.preset), f"preset {args.preset}"
    else:
        from ..runtime.checkpoint import read_config

        cfg, meta = read_config(args.checkpoint)
        source = f"checkpoint {args.checkpoint}"
    counts = parameter_counts(cfg)
    if args.json:
        print(json.dumps({"source": source, "config": cfg.to_dict(), "meta": meta, "parameters": counts}, indent=2))
        return 0
    print(f"# {source}")
    for k, v in cfg.to_dict().items():
        print(f"{k:>20}: {v}")
    for k, v in meta.items():
        print(f"{'meta.' + k:>20}: {v}")
    print("\nparameters")
    for k, v in counts.items():
        print(f"{k:>28}: {v / 1e6:9.3f} M")
    return 0
