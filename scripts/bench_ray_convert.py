"""Frames/s of `svsgan convert --executor ray` (1 and 2 actors) against `--workers 1/2`, in one run.

Also Ray's fixed start-up cost: `ray.init` + `ray.shutdown` of a local instance with nothing to do.
Speeds are printed as ratios to `--workers 1` of the same run (a shared machine makes absolute
frames/s meaningless across runs). Example:
  PYTHONPATH=. python3 scripts/bench_ray_convert.py --bags 4 --frames 8
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from svsgan_core.cli import main as cli_main
from svsgan_core.io.synthetic_bag import SEMANTIC_TOPIC, write_semantic_bag
from svsgan_core.models import SVSGenerator
from svsgan_core.models.config import ModelConfig
from svsgan_core.runtime.checkpoint import save_checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bags", type=int, default=4)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=128)
    a = p.parse_args()
    os.environ.pop("RAY_ADDRESS", None)
    with tempfile.TemporaryDirectory(prefix="svsgan-bench-ray-") as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        cfg = ModelConfig(height=a.height, width=a.width, dec_channels=[16, 16, 32, 32], img_channels=[8, 8, 16, 16],
                          sem_channels=[8, 8, 16, 16], bottleneck_channels=8, spade_hidden=16, flow_channels=[8, 16],
                          flow_res_blocks=1, d_channels=[8, 16, 16, 32], dv_channels=[8, 16, 32])
        ckpt = save_checkpoint(tmp / "ckpt", SVSGenerator(cfg))
        bags = [str(write_semantic_bag(tmp / "in" / f"bag{i}", frames=a.frames, height=a.height, width=a.width,
                                       seed=i)) for i in range(a.bags)]
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        ray.shutdown()
        startup = time.perf_counter() - t0
        total = a.bags * a.frames
        seconds = {}
        for executor, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
            out = tmp / f"out-{executor}{workers}"
            t0 = time.perf_counter()
            rc = cli_main(["convert", *bags, str(out), "--checkpoint", str(ckpt), "--map", f"{SEMANTIC_TOPIC}:/gen",
                           "--executor", executor, "--workers", str(workers), "--no-progress"])
            seconds[f"{executor}{workers}"] = time.perf_counter() - t0
            assert rc == 0, f"{executor} {workers} failed"
    base = seconds["local1"]
    print(json.dumps({
        "bags": a.bags, "frames_per_bag": a.frames, "size": [a.height, a.width], "cpus": os.cpu_count(),
        "ray_startup_s": round(startup, 2),
        "frames_per_s": {k: round(total / v, 2) for k, v in seconds.items()},
        "speed_vs_local1": {k: round(base / v, 2) for k, v in seconds.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
