#!/usr/bin/env python3
"""How close the demo's output is to its own camera: a checkpoint on the bundled bag's scene.

The demo bag is a procedural street (svsgan_core/data/synthetic.py, seed 1, 60 frames), so its ground
truth exists: this renders the same scene at the model's size, generates it from the real first frame
(reference mode, the demo's default) and from the labels alone (first-frame mode), and prints per-frame
L1 (RGB in [0, 1]) and sharpness (Laplacian variance over the camera's) beside the class-mean painting
fitted on the training data. docs/demo.md records the numbers of the bundled checkpoint:

    python scripts/demo_quality.py --train-data runs/synthetic_data/train_default --sheet demo_quality.png

(`scripts/learning_check.py --appearance default` writes that training data.)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from svsgan_core.data.datasets import build_dataset
from svsgan_core.data.synthetic import generate_sequence
from svsgan_core.inference import VideoSynthesizer
from svsgan_core.metrics.pixels import ClassMeanBaseline  # the class-mean baseline as `svsgan eval` fits it
from svsgan_core.metrics.pixels import l1_per_frame, sharpness_per_frame

ROOT = Path(__file__).resolve().parents[1]
DEMO_SCENE = {"seed": 1, "frames": 60}  # scripts/make_demo_bag.py's defaults
SHEET_FRAMES = (0, 12, 24, 36, 48, 59)


def scores(out: np.ndarray, real: np.ndarray) -> dict:
    l1, sharp = l1_per_frame(out, real), sharpness_per_frame(out, real)
    return {"l1_frames_1_59": round(float(l1[1:].mean()), 4), "l1_frames_30_59": round(float(l1[30:].mean()), 4),
            "sharpness_mean": round(float(sharp[1:].mean()), 2), "sharpness_min": round(float(sharp[1:].min()), 2),
            "l1_at_1_5_10_20_30_45_59": [round(float(l1[k]), 3) for k in (1, 5, 10, 20, 30, 45, 59)]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "svsgan_core" / "assets" / "demo_checkpoint"))
    p.add_argument("--train-data", type=Path, help="a synthetic training set: adds the class-mean baseline")
    p.add_argument("--sheet", type=Path, help="write camera | reference mode | first-frame mode rows here (PNG)")
    args = p.parse_args()
    torch.set_num_threads(1)
    synth = VideoSynthesizer.from_checkpoint(args.checkpoint, device="cpu", backend="torch")
    h, w = synth.cfg.height, synth.cfg.width
    real, labels = generate_sequence(DEMO_SCENE["seed"], DEMO_SCENE["frames"], h, w)
    result, outs = {}, {}
    for mode, reference in (("reference", real[0]), ("first_frame", None)):
        synth.reset(reference_image=reference)
        outs[mode] = np.stack([synth.step(lab) for lab in labels])
        result[mode] = scores(outs[mode], real)
    if args.train_data:
        data = build_dataset("synthetic", str(args.train_data), size=(h, w), seq_len=12, label_space="cityscapes",
                             augment=False, random_clips=False)
        base = ClassMeanBaseline.fitted((((item["images"] + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy(),
                                 item["labels"].numpy()) for item in (data[i] for i in range(len(data))))
        result["class_mean"] = scores(base.paint(labels), real)
    print(json.dumps(result, indent=2))
    if args.sheet:
        rows = [np.concatenate([real[k], outs["reference"][k], outs["first_frame"][k]], axis=1) for k in SHEET_FRAMES]
        cv2.imwrite(str(args.sheet), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
