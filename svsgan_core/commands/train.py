"""Train SVS-GAN from a YAML config; runs alone or under torchrun (one process per GPU, or gloo on CPU).

Examples:
  svsgan make-synthetic data/synthetic/train --sequences 64 --frames 30 --size 128x64
  svsgan train --config training/configs/synthetic_cpu.yaml
  svsgan train --config training/configs/cityscapes_512x256.yaml --set data.root=/data/cityscapes
  torchrun --nproc_per_node 4 -m svsgan_core.cli train --config training/configs/cityscapes_512x256.yaml
  torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint node0:29500 --rdzv_id run42 \\
      -m svsgan_core.cli train --config ...    # several nodes (Slurm: docs/training.md)
  svsgan train --resume runs/00003-cityscapes_512x256          # continue exactly where it stopped
  svsgan train --config training/configs/cityscapes_1024x512.yaml \\
      --set model.init_from=runs/00003-cityscapes_512x256     # resolution stage (Section 4.1)

A run folder holds options.yaml (the resolved options), log.jsonl, tb/ (TensorBoard), samples/*.mp4
and checkpoints/latest (generator.safetensors there is the EMA generator, ready for `svsgan demo`,
`svsgan eval` and the ROS node). docs/training.md describes the losses, schedule and configs.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="training config (training/configs/*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option, e.g. --set optim.lr=1e-4 --set data.root=/data (repeatable)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue a run from its checkpoints/latest with its saved options (plus --set)")
    p.add_argument("--run-dir", type=Path, help="write the run here (default: <run.out_dir>/<NNNNN>-<run.name>)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when available (under torchrun: the GPU of LOCAL_RANK)")
    p.add_argument("--threads", type=int, help="CPU threads per process (torch.set_num_threads)")
    p.add_argument("--check", action="store_true", help="load and validate the config (and data), then exit")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import InputError
    from ..train import distributed
    from ..train.options import load_options, read_yaml
    from ..train.trainer import Trainer, new_run_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume:
        run_dir = args.resume
        saved = run_dir / "options.yaml"
        if not saved.is_file():
            raise InputError(f"{saved} not found: --resume needs a run folder written by `svsgan train`")
        opts = load_options(args.config, args.overrides) if args.config else \
            load_options(None, args.overrides, base=read_yaml(saved))
    else:
        if not args.config:
            raise InputError("give --config training/configs/<name>.yaml (or --resume RUN_DIR)")
        opts = load_options(args.config, args.overrides)
    if args.check:  # the data too: training would stop on a missing folder only after the model is built
        for name in ("root", "sample_root"):
            folder = getattr(opts.data, name)
            if folder and not Path(folder).expanduser().is_dir():
                make = f", e.g. svsgan make-synthetic {folder}" if opts.data.kind == "synthetic" else ""
                raise InputError(f"{args.config or saved}: data.{name} {folder} is not a folder (relative paths "
                                 f"start at the current folder, {Path.cwd()}); make the data first (docs/datasets.md"
                                 f"{make}) or --set data.{name}=FOLDER")
        print(f"{args.config or saved}: valid ({opts.model.preset}, data {opts.data.kind} at {opts.data.root})")
        return 0
    info = distributed.init_distributed(None if args.device == "auto" else args.device)
    try:
        if args.resume:
            run_dir = args.resume
        elif args.run_dir:
            run_dir = args.run_dir
        else:
            run_dir = distributed.gather_objects(new_run_dir(opts.run.out_dir, opts.run.name) if info.is_main else None,
                                       info)[0]
        trainer = Trainer(opts, run_dir, info)
        if args.resume:
            trainer.resume(run_dir)
        trainer.write_options({"command": "svsgan train", "config": str(args.config) if args.config else None,
                               "overrides": list(args.overrides), "resumed": bool(args.resume)})
        latest = trainer.train()
        if info.is_main:
            print(f"svsgan train: step {trainer.step}, checkpoint {latest}")
    finally:
        distributed.shutdown()
    return 0
