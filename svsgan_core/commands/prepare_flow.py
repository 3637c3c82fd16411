"""Compute pseudo-ground-truth optical flow (OpenCV DIS) for a dataset once and cache it beside the data.

One file per frame except the first of each sequence, holding the backward flow to the previous
frame and its forward-backward confidence (format and locations: docs/datasets.md). Existing files
are kept unless --overwrite, so an interrupted run continues where it stopped; flow files you made
with another method in the same format are used as they are.

Examples:
  svsgan prepare-flow data/synthetic/train
  svsgan prepare-flow /data/cityscapes --layout cityscapes --split train --max-width 1024
  svsgan prepare-flow /data/KITTI-360 --layout kitti360 --max-width 1024
  svsgan prepare-flow /data/vid2vid/cityscapes --layout vid2vid --split train --max-width 512 \
      --flow-root /data/vid2vid/cityscapes_flow/train
"""
from __future__ import annotations

import argparse
from pathlib import Path

LAYOUT_CHOICES = ("auto", "folder", "carla", "cityscapes", "kitti360", "vid2vid")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", type=Path, help="dataset root")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto",
                   help="dataset layout (default: detected from the folder)")
    p.add_argument("--split", help="cityscapes: train/val/test (default train); kitti360: train/val (default: all "
                                   "labelled frames); vid2vid: the <split>_A/_B folders (default train)")
    p.add_argument("--sequences", help="comma list: only these sequences (e.g. seq0000,seq0001)")
    p.add_argument("--flow-root", type=Path, help="cityscapes, kitti360, vid2vid: where the flow files go (default "
                                                  "beside the data; give one when the data folder is read-only)")
    p.add_argument("--label-root", type=Path, help="cityscapes: pseudo-label folder (default ROOT/pseudo_labels_sequence)")
    p.add_argument("--label-suffix", default="labelTrainIds", help="cityscapes: label file suffix (default labelTrainIds)")
    p.add_argument("--max-width", type=int, help="compute and store flow on frames downscaled to this width "
                   "(recommended for large frames; training resamples flow to its size anyway)")
    p.add_argument("--preset", choices=("ultrafast", "fast", "medium"), default="medium", help="DIS preset (default medium)")
    p.add_argument("--overwrite", action="store_true", help="recompute files that already exist")


def run(args: argparse.Namespace) -> int:
    from ..data.flow import prepare_flow
    from ..data.layouts import detect_layout, find_sequences
    from ..errors import InputError

    layout = detect_layout(args.root) if args.layout == "auto" else args.layout
    options = {}
    if layout == "cityscapes":
        options = {"split": args.split or "train", "label_root": args.label_root, "label_suffix": args.label_suffix}
    elif layout == "kitti360":
        options = {"split": args.split}
    elif layout == "vid2vid":
        options = {"split": args.split or "train"}
    elif args.split:
        raise InputError(f"--split does not apply to the {layout} layout")
    if args.flow_root is not None:
        if layout not in ("cityscapes", "kitti360", "vid2vid"):
            raise InputError(f"--flow-root does not apply to the {layout} layout (flow lives in <sequence>/flow/)")
        options["flow_root"] = args.flow_root
    if args.sequences:
        options["sequence_names"] = [n.strip() for n in args.sequences.split(",") if n.strip()]
    if args.max_width is not None and args.max_width < 8:
        raise InputError("--max-width must be at least 8")
    sequences = find_sequences(layout, args.root, **options)
    counts = prepare_flow(sequences, overwrite=args.overwrite, max_width=args.max_width, preset=args.preset)
    print(f"{layout} dataset {args.root}: {len(sequences)} sequences, wrote {counts['written']} flow files, "
          f"kept {counts['skipped']} existing")
    return 0
