"""Write procedural synthetic street sequences as a dataset folder (the generic sequence layout).

Every sequence is a new street (layout, traffic, weather, camera) seen from a car driving along it;
labels are Cityscapes trainIds, instances/ holds each frame's instance ids (0 for stuff, one id per
vehicle, pedestrian and cyclist, stable over the sequence) and flow/ the exact backward flow with its
visibility as confidence (the format of `svsgan prepare-flow`), unless --no-flow. The same arguments
always write the same data. See docs/datasets.md.

Examples:
  svsgan make-synthetic data/synthetic/train --sequences 64 --frames 30 --size 256x128 --seed 0
  svsgan make-synthetic data/synthetic/val --sequences 8 --frames 30 --size 256x128 --seed 1
  svsgan make-synthetic data/random/val --sequences 8 --appearance random --seed 1   # colours per sequence
  svsgan make-synthetic data/touching/val --sequences 8 --touching --seed 2  # parked rows, pedestrian groups
"""
from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="dataset folder to create")
    p.add_argument("--sequences", type=int, default=8, help="number of sequences (default 8)")
    p.add_argument("--frames", type=int, default=30, help="frames per sequence (default 30)")
    p.add_argument("--size", default="256x128", help="frame size WIDTHxHEIGHT (default 256x128)")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole set; sequence i gets a seed derived from (seed, i)")
    p.add_argument("--supersample", type=int, default=2,
                   help="samples per pixel along each axis (default 2: anti-aliased edges, 4x the render time)")
    p.add_argument("--appearance", choices=("default", "random"), default="default",
                   help="default: each class looks like itself (asphalt grey, vegetation green); random: every "
                        "class gets a colour, contrast and texture drawn per sequence, so the labels cannot "
                        "predict them and only the frames seen before can (same layout and labels as default)")
    p.add_argument("--touching", action="store_true",
                   help="streets where objects of one class touch: cars parked bumper to bumper in rows on both "
                        "sides and pedestrians in close groups, one blob in the labels and apart only in the "
                        "instance maps (for the boundary metric of `svsgan eval`); without it the scenes are the "
                        "default ones, unchanged")
    p.add_argument("--no-flow", action="store_true", help="do not write the exact flow files")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")


def parse_size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (width, height)."""
    from ..errors import InputError

    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match or min(int(match[1]), int(match[2])) < 8:
        raise InputError(f"size must be WIDTHxHEIGHT with both at least 8, e.g. 256x128; got {text!r}")
    return int(match[1]), int(match[2])


def sequence_seed(seed: int, index: int) -> int:
    """Seeds of different sets do not collide the way seed + index would (set 0 item 1 vs set 1 item 0)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, index]).generate_state(1)[0])


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.flow import save_flow
    from ..data.layouts import DATASET_FILE, read_dataset_info, write_dataset_info, write_frame
    from ..data.synthetic import LABEL_SPACE, generate_sequence
    from ..errors import InputError

    width, height = parse_size(args.size)
    if args.sequences < 1 or args.frames < 1:
        raise InputError("--sequences and --frames must be at least 1")
    root: Path = args.out
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not args.overwrite:
            raise InputError(f"{root} is not empty; pass --overwrite to replace the dataset in it")
        if (root / DATASET_FILE).is_file():
            for entry in read_dataset_info(root).get("sequences", []):
                shutil.rmtree(root / str(entry["name"]), ignore_errors=True)
            (root / DATASET_FILE).unlink()

    names = [f"seq_{i:04d}" for i in range(args.sequences)]
    seeds = [sequence_seed(args.seed, i) for i in range(args.sequences)]
    with tqdm(total=args.sequences * args.frames, desc="make-synthetic", unit="frame", disable=args.no_progress) as bar:
        for name, seed in zip(names, seeds):
            shutil.rmtree(root / name, ignore_errors=True)
            bar.set_postfix_str(name, refresh=False)
            rendered = generate_sequence(seed, args.frames, height, width, return_flow=not args.no_flow,
                                         supersample=args.supersample, appearance=args.appearance,
                                         return_instances=True, touching=args.touching)
            for i in range(args.frames):
                frame = write_frame(root, name, i, rendered[0][i], rendered[1][i], rendered[-1][i])
                if not args.no_flow and i > 0:
                    save_flow(frame.flow, rendered[2][i], rendered[3][i])
                bar.update(1)
    write_dataset_info(
        root, LABEL_SPACE, source="svsgan make-synthetic", size=[width, height], frames=args.frames,
        seed=args.seed, supersample=args.supersample, appearance=args.appearance, touching=args.touching,
        instances=True, flow="exact" if not args.no_flow else "none",
        sequences=[{"name": n, "seed": s} for n, s in zip(names, seeds)],
    )
    print(f"wrote {args.sequences} sequences of {args.frames} frames ({width}x{height}) to {root}")
    return 0
