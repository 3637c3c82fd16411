#!/usr/bin/env python3
"""How much can a sequence's first frame say about its later frames? Oracles, no model.

Issue 23 asks that from frame 20 on the output with the real first frame be clearly better than without
it (L1 at most 0.85x). This scores, over frames --from-frame..N of each evaluation sequence, paintings
that take their colours from the first frame, some with help no stream has (the camera's own later
frames), so they show how much a first frame can say there at all:

  palette, static        the class palette of frame 0 as a stream uses it (models/generator.py:
                         class_palette, local over --palette-cells), the training set's class means where
                         frame 0 does not show a class
  palette, camera flow   frame 0 and its labels first warped onto frame t by DIS flow between the *camera*
                         frames 0 and t (oracle: a stream has no camera frame t)
  frame 0, camera flow   frame 0 itself warped the same way where the warped labels agree with frame t's,
                         the line above elsewhere (oracle)
  palette of frame t     frame t's own local class means (not a reference at all: the ceiling of colours
                         at this palette size)
  class means            the training set's class means (`svsgan eval --baseline class-mean`)

L1 as `svsgan eval` computes it (RGB in [0, 1], frames at the model size). Divide by the L1 of a model
without the reference over the same frames to see the best ratio each kind of method allows:

    python scripts/reference_bound.py DATA --sequences seq0004 --train-sequences seq0000,seq0001,seq0002,seq0003
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from svsgan_core.data.datasets import build_dataset
from svsgan_core.data.labels import get_label_space
from svsgan_core.data.layouts import detect_layout
from svsgan_core.errors import SvsganError
from svsgan_core.metrics.pixels import ClassMeanBaseline, l1_per_frame
from svsgan_core.models.flow import warp
from svsgan_core.models.generator import class_palette, one_hot


def sequences(root: str, names: str, size: tuple[int, int], space: str, length: int):
    """(real T x H x W x 3 uint8, labels T x H x W) per evaluation sequence, read as `svsgan eval` does."""
    data = build_dataset(detect_layout(root), root, size=size, seq_len=1, label_space=space, augment=False,
                         random_clips=False, segment_length=length, sequence_names=names.split(","))
    data.set_sequence_length(min(length, max(len(s) for s in data.sequences)))
    for i in range(len(data)):
        item = data[i]
        real = ((item["images"] + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        yield real, item["labels"].numpy()


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return ((image[0].permute(1, 2, 0).numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)


def paintings(real: np.ndarray, labels: np.ndarray, means: np.ndarray, n: int, cells: int) -> dict[str, list]:
    """Every method's painting of frames 1..T-1 (uint8), keyed by its name."""
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in real]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    first, first_seg = to_tensor(real[0]), one_hot(torch.from_numpy(labels[:1].astype(np.int64)), n)
    out: dict[str, list] = {k: [] for k in ("palette, static", "palette, camera flow", "frame 0, camera flow",
                                            "palette of frame t", "class means")}
    for t in range(1, len(real)):
        lab = torch.from_numpy(labels[t:t + 1].astype(np.int64))
        seg = one_hot(lab, n)
        fallback = to_tensor(means[labels[t]].astype(np.uint8))

        def paint(source, source_seg):
            colour, known = class_palette(source, source_seg, seg, cells)
            return known * colour + (1.0 - known) * fallback

        flow = torch.from_numpy(dis.calc(grey[t], grey[0], None)).permute(2, 0, 1)[None]  # frame t -> frame 0
        moved, moved_seg = warp(first, flow), warp(first_seg, flow)
        by_flow = paint(moved, moved_seg)
        agree = (moved_seg * seg).sum(1, keepdim=True) > 0.99
        out["palette, static"].append(paint(first, first_seg))
        out["palette, camera flow"].append(by_flow)
        out["frame 0, camera flow"].append(torch.where(agree, moved, by_flow))
        out["palette of frame t"].append(paint(to_tensor(real[t]), seg))
        out["class means"].append(fallback)
    return {k: np.stack([to_uint8(x) for x in v]) for k, v in out.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="dataset root (vid2vid layout or svsgan's folder layout)")
    p.add_argument("--sequences", required=True, help="comma list of the sequences to score")
    p.add_argument("--train-sequences", required=True, help="comma list the class means are fitted on")
    p.add_argument("--size", default="128x64", help="WxH, the model's size (default 128x64)")
    p.add_argument("--label-space", default="cityscapes_ids")
    p.add_argument("--palette-cells", type=int, default=16, help="as the model's palette_cells (default 16)")
    p.add_argument("--from-frame", type=int, default=20, help="score frames from this 1-based number on (default 20)")
    p.add_argument("--length", type=int, default=30, help="frames per sequence, the first included (default 30)")
    args = p.parse_args()
    torch.set_num_threads(1)
    w, h = (int(v) for v in args.size.lower().split("x"))
    space = get_label_space(args.label_space)
    base = ClassMeanBaseline.fitted(sequences(args.data, args.train_sequences, (h, w), space.name, args.length))
    means = base.means
    scores: dict[str, list] = {}
    for real, labels in sequences(args.data, args.sequences, (h, w), space.name, args.length):
        for name, frames in paintings(real, labels, means, space.num_classes, args.palette_cells).items():
            l1 = l1_per_frame(frames, real[1:])  # frame number k is index k - 2 here
            scores.setdefault(name, []).append((l1.mean(), l1[args.from_frame - 2:].mean()))
    print(f"| painting | L1 frames 2..{args.length} | L1 frames {args.from_frame}..{args.length} |")
    print("| --- | --- | --- |")
    for name, rows in scores.items():
        a, b = np.mean(rows, 0)
        print(f"| {name} | {a:.4f} | {b:.4f} |")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except SvsganError as exc:  # a missing folder or sequence: say so, no traceback
        raise SystemExit(f"reference_bound: {exc}") from None
