#!/usr/bin/env python
"""Learning check: a fixed CPU budget of training on the synthetic street videos must lower the
held-out per-frame error AND the temporal warping error of generated sequences, versus the same
model at initialisation. The trained EMA generator is the checkpoint `svsgan demo` bundles.

Evaluation follows the paper's: every held-out sequence starts from its real first frame (the
reference image) and the model generates the rest autoregressively from the label maps.
- per-frame error: mean |generated - real| over the generated frames, RGB in [0, 1];
- warping error: svsgan_core.metrics.temporal (DIS flow of the real video, occlusion-masked mean
  squared difference of consecutive generated frames, RGB in [0, 1]).
With `class_colour` (synthetic_cpu.yaml) the model starts as the class-mean painting, steadier than any
camera; the warping error must then stay below the real video's own instead of falling.
The budget is a number of training steps, so the result does not depend on how busy the CPU is;
the CPU seconds it took are printed.

The data has random appearance by default (`make-synthetic --appearance random`: colours and
textures drawn per sequence), so labels cannot predict them and only the reference frame can. After
training, `svsgan eval` scores the checkpoint with and without the reference, beside the class-mean
baseline (issue 16's criteria: beat the class-mean on L1 and FID; L1 over frames 2..N at most 0.67x
the no-reference L1), into <run-dir>/eval/{ref,noref}.json. docs/training.md records the numbers:

    python scripts/learning_check.py --steps 480 --threads 1

The bundled demo checkpoint comes from the same recipe on default-appearance data (plausible colours
per class, which the demo must paint without a reference frame):

    python scripts/learning_check.py --appearance default --steps 480 --threads 1 \
        --bundle svsgan_core/assets/demo_checkpoint
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from svsgan_core.runtime.checkpoint import CONFIG_NAME, GENERATOR_NAME, load_generator  # noqa: E402
from svsgan_core.cli import main as svsgan  # noqa: E402
from svsgan_core.data.datasets import build_dataset  # noqa: E402
from svsgan_core.metrics.temporal import warping_error  # noqa: E402
from svsgan_core.train.options import load_options  # noqa: E402
from svsgan_core.train.trainer import Trainer  # noqa: E402

CONFIG = ROOT / "training" / "configs" / "synthetic_cpu.yaml"
SIZE = "128x64"
TRAIN_SET = {"sequences": 48, "frames": 12, "seed": 0}
VAL_SET = {"sequences": 6, "frames": 12, "seed": 1}


def make_data(root: Path, appearance: str) -> tuple[Path, Path]:
    """The train/val folders (svsgan make-synthetic; the same arguments always give the same data)."""
    paths = []
    for name, spec in (("train", TRAIN_SET), ("val", VAL_SET)):
        path = root / f"{name}_{appearance}"
        if not (path / "dataset.yaml").is_file():
            rc = svsgan(["make-synthetic", str(path), "--sequences", str(spec["sequences"]), "--frames",
                         str(spec["frames"]), "--size", SIZE, "--seed", str(spec["seed"]),
                         "--appearance", appearance, "--overwrite"])
            if rc:
                raise SystemExit(rc)
        paths.append(path)
    return paths[0], paths[1]


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    return frames.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def evaluate(trainer: Trainer, generator: torch.nn.Module, val_root: Path) -> dict[str, float]:
    cfg = trainer.cfg
    ds = build_dataset("synthetic", val_root, size=(cfg.height, cfg.width), seq_len=VAL_SET["frames"],
                       label_space=cfg.label_space, augment=False, random_clips=False)
    generator.eval()
    l1, l1_first, warp, warp_real = [], [], [], []
    for i in range(len(ds)):
        item = ds[i]
        real, labels = item["images"], item["labels"]
        ref = trainer.generate(generator, labels, real[0])
        first = trainer.generate(generator, labels, None)
        l1.append(float((ref[1:] - real[1:]).abs().mean() / 2))
        l1_first.append(float((first - real).abs().mean() / 2))
        real_u8 = to_uint8(real)
        warp.append(warping_error(to_uint8(ref[1:]), real_u8[1:]))
        warp_real.append(warping_error(real_u8[1:], real_u8[1:]))
    return {"l1_reference": float(np.mean(l1)), "warping_error": float(np.nanmean(warp)),
            "l1_first_frame_mode": float(np.mean(l1_first)), "warping_error_real_video": float(np.nanmean(warp_real))}


def score(checkpoint: Path, train_root: Path, val_root: Path, out: Path) -> dict:
    """Issue 16's criteria through `svsgan eval`: with the reference (beside the class-mean baseline) and without."""
    common = ["eval", "--checkpoint", str(checkpoint), "--data", str(val_root), "--kind", "synthetic",
              "--sequence-length", str(VAL_SET["frames"]), "--device", "cpu"]
    runs = {"ref": ["--first-frame", "real", "--metrics", "l1,psnr,fid,sharpness,carry", "--baseline", "class-mean",
                    "--baseline-data", str(train_root)],
            "noref": ["--first-frame", "generated", "--metrics", "l1,psnr,sharpness"]}
    docs = {}
    for name, extra in runs.items():
        if svsgan(common + extra + ["--json", str(out / f"{name}.json"), "--out", str(out / name)]):
            raise SystemExit(f"svsgan eval ({name}) failed")
        docs[name] = json.loads((out / f"{name}.json").read_text())
    ref, noref, base = docs["ref"]["metrics"], docs["noref"]["metrics"], docs["ref"]["baselines"]["class-mean"]["metrics"]
    return {"l1_from_frame_2": ref["l1_from_frame_2"], "l1_from_frame_2_no_reference": noref["l1_from_frame_2"],
            "ratio": ref["l1_from_frame_2"] / noref["l1_from_frame_2"], "l1": ref["l1"], "fid": ref["fid"],
            "class_mean_l1": base["l1"], "class_mean_fid": base["fid"], "carry": ref.get("carry"),
            "sharpness": ref["sharpness"], "sharpness_min": ref["sharpness_min"],
            "sharpness_no_reference": noref["sharpness"], "class_mean_sharpness": base["sharpness"],
            "l1_per_frame": docs["ref"]["per_frame"]["l1"],
            "class_mean_l1_per_frame": docs["ref"]["baselines"]["class-mean"]["per_frame"]["l1"],
            "no_reference_l1_per_frame": docs["noref"]["per_frame"]["l1"]}


def bundle(latest: Path, dest: Path, result: dict) -> None:
    """The inference part of the checkpoint (config + EMA generator), its meta saying how it was made."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(latest / GENERATOR_NAME, dest / GENERATOR_NAME)
    config = yaml.safe_load((latest / CONFIG_NAME).read_text())
    config["meta"] = {
        "step": config["meta"]["step"], "trained_with": "svsgan train (training/configs/synthetic_cpu.yaml)",
        "recipe": f"python scripts/learning_check.py --steps {result['steps']} --threads {result['threads']} "
                  f"--appearance {result['appearance']} "
                  + "".join(f"--set {o} " for o in result.get("overrides", []))
                  + "--bundle svsgan_core/assets/demo_checkpoint",
        "data": f"svsgan make-synthetic --appearance {result['appearance']}, {TRAIN_SET['sequences']} sequences x "
                f"{TRAIN_SET['frames']} frames, {SIZE}, seed {TRAIN_SET['seed']} (docs/training.md)",
        "learning_check": {k: round(v, 5) for k, v in result["after"].items()},
        "reference_carry": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in result["reference_carry"].items()
                    if not k.endswith("per_frame")},
    }
    (dest / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=480, help="training steps, the budget (default 480: the whole synthetic_cpu schedule)")
    p.add_argument("--appearance", choices=("random", "default"), default="random",
                   help="make-synthetic appearance of train and held-out data (default random: only the reference tells colours)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--data", type=Path, default=ROOT / "runs" / "synthetic_data", help="where the synthetic sets go")
    p.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "learning_check")
    p.add_argument("--bundle", type=Path, help="copy the trained EMA generator here (the demo checkpoint)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --run-dir")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option of synthetic_cpu.yaml, as `svsgan train --set` (repeatable; e.g. a longer "
                        "schedule: --set schedule.constant_epochs=24); the bundled recipe records them")
    args = p.parse_args()
    if args.bundle and args.appearance != "default":
        p.error("--bundle makes the demo checkpoint, which must paint each class in plausible colours: train it "
                "with --appearance default (random appearance stays in the learning check)")
    torch.set_num_threads(args.threads)

    train_root, val_root = make_data(args.data, args.appearance)
    opts = load_options(CONFIG, [f"data.root={train_root}", f"data.sample_root={val_root}",
                                 f"schedule.max_steps={args.steps}", *args.overrides])
    if args.run_dir.exists() and not args.resume:
        shutil.rmtree(args.run_dir)
    trainer = Trainer(opts, args.run_dir)
    trainer.write_options({"command": "scripts/learning_check.py " + " ".join(sys.argv[1:])})
    before = evaluate(trainer, trainer.ema.model, val_root)
    print("at initialisation:", json.dumps(before))
    if args.resume and (args.run_dir / "checkpoints" / "latest").is_dir():
        trainer.resume(args.run_dir)
    cpu0, wall0 = time.process_time(), time.time()
    latest = trainer.train()
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    after = evaluate(trainer, load_generator(latest), val_root)
    print("after training:   ", json.dumps(after))

    carry = score(latest, train_root, val_root, args.run_dir / "eval")
    result = {"steps": trainer.step, "threads": args.threads, "appearance": args.appearance, "overrides": args.overrides,
              "cpu_seconds": round(cpu, 1),
              "wall_seconds": round(wall, 1), "before": before, "after": after,
              "lower_l1": after["l1_reference"] < before["l1_reference"],
              # with class colours the model starts as the class-mean painting, which flickers less than a
              # camera does: a warping error at the real video's own level is then what training must keep
              "lower_warping_error": after["warping_error"] < max(before["warping_error"], after["warping_error_real_video"]),
              "reference_carry": carry}
    (args.run_dir / "learning_check.json").write_text(json.dumps(result, indent=2))
    print(f"\n{'metric (held-out, reference-conditioned)':44s} {'init':>10s} {'trained':>10s}")
    for key in ("l1_reference", "warping_error", "l1_first_frame_mode"):
        print(f"{key:44s} {before[key]:10.4f} {after[key]:10.4f}")
    print(f"{'warping_error of the real video (floor)':44s} {after['warping_error_real_video']:10.4f}")
    print(f"{trainer.step} steps, {cpu:.0f} CPU s, {wall:.0f} s wall, {args.threads} thread(s)")
    print(f"with reference: L1 frames 2..N {carry['l1_from_frame_2']:.4f} = {carry['ratio']:.2f}x no reference "
          f"({carry['l1_from_frame_2_no_reference']:.4f}); L1 {carry['l1']:.4f} vs class-mean {carry['class_mean_l1']:.4f}; "
          f"FID {carry['fid']:.1f} vs class-mean {carry['class_mean_fid']:.1f}; carry {carry['carry']}")
    print(f"sharpness (1: the camera's detail): {carry['sharpness']:.2f} with the reference (worst frame "
          f"{carry['sharpness_min']:.2f}), {carry['sharpness_no_reference']:.2f} without, class-mean "
          f"{carry['class_mean_sharpness']:.2f}")
    print("L1 per frame, reference: " + " ".join(f"{v:.3f}" for v in carry["l1_per_frame"]))
    print("L1 per frame, class-mean: " + " ".join(f"{v:.3f}" for v in carry["class_mean_l1_per_frame"]))
    if args.bundle:
        bundle(latest, args.bundle, result)
        print(f"bundled {latest} -> {args.bundle}")
    ok = result["lower_l1"] and result["lower_warping_error"]
    print("LEARNING CHECK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
