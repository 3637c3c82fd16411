"""Step time of DDP training with 1 vs 2 gloo processes (one thread each) on the tiny model.

Each process trains batch 1 clip, so 2 processes do twice the work per step; the ratio of step
times says what the gradient all-reduce and the second process cost on this CPU.

  python scripts/bench_ddp_step.py [--steps 6] [--frames 4]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_ddp import TINY_MODEL  # noqa: E402

from svsgan_core.cli import main as cli_main  # noqa: E402
from svsgan_core.train import distributed as D  # noqa: E402
from svsgan_core.train.options import TrainOptions  # noqa: E402
from svsgan_core.train.trainer import Trainer  # noqa: E402


def _worker(rank: int, world: int, port: int, root: str, out: str, steps: int, frames: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = D.init_distributed("cpu")
    try:
        opts = TrainOptions.from_dict({
            "model": {"preset": "tiny", "overrides": TINY_MODEL},
            "data": {"kind": "synthetic", "root": root, "with_flow": True},
            "loss": {"vgg": 0.0, "labelmix": 10.0}, "optim": {"batch_size": 1, "frames_per_step": 2},
            "schedule": {"seq_lengths": [frames], "reference_prob": 0.5},
            "log": {"every": 0, "sample_every": 0, "checkpoint_every": 0, "tensorboard": False, "progress": False}})
        trainer = Trainer(opts, Path(out) / f"run{world}", info)
        trainer._begin_epoch(0)
        times = []
        for batch in trainer._loader(0, 0):
            D.barrier(info)
            t0 = time.perf_counter()
            trainer.train_step(batch)
            trainer.step += 1
            times.append(time.perf_counter() - t0)
            if len(times) > steps:
                break
        if rank == 0:
            Path(out, f"times{world}.json").write_text(json.dumps(times[1:]))  # the first step warms up
    finally:
        D.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--frames", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = str(Path(tmp) / "data")
        cli_main(["make-synthetic", root, "--sequences", str(2 * (args.steps + 1)), "--frames", str(args.frames),
                  "--size", "64x32"])
        result = {}
        for world in (1, 2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            mp.spawn(_worker, args=(world, port, root, tmp, args.steps, args.frames), nprocs=world, join=True)
            times = json.loads(Path(tmp, f"times{world}.json").read_text())
            result[f"ms_per_step_{world}proc"] = round(1000 * sorted(times)[len(times) // 2], 1)
        result["step_time_ratio_2_over_1"] = round(result["ms_per_step_2proc"] / result["ms_per_step_1proc"], 2)
        result["clips_per_s_ratio_2_over_1"] = round(2 / result["step_time_ratio_2_over_1"], 2)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
