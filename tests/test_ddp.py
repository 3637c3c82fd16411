"""DistributedDataParallel training: a run of 2 gloo processes killed mid-way resumes exactly."""
from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from svsgan_core.cli import main as cli_main
from svsgan_core.train import distributed as D
from svsgan_core.train.options import TrainOptions
from svsgan_core.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_MODEL = {
    "height": 32, "width": 64, "dec_channels": [16, 16, 32], "img_channels": [8, 8, 16], "sem_channels": [8, 8, 16],
    "bottleneck_channels": 8, "spade_hidden": 16, "flow_channels": [8, 16], "flow_res_blocks": 1,
    "d_channels": [8, 16, 16], "dv_channels": [8, 16],
}
STEPS, SAVE_EVERY, KILL_AT = 5, 2, 3  # 4 clips, 2 per global batch: epochs 0, 1, 2 (clip length 3, then 4)


def _options(root: Path, checkpoint_every: int) -> TrainOptions:
    return TrainOptions.from_dict({
        "run": {"name": "ddp", "seed": 5},
        "model": {"preset": "tiny", "overrides": TINY_MODEL},
        "data": {"kind": "synthetic", "root": str(root), "with_flow": True, "options": {"augment": True}},
        "loss": {"vgg": 0.0, "labelmix": 10.0},
        "optim": {"batch_size": 1, "frames_per_step": 2},
        "schedule": {"seq_lengths": [3, 4], "seq_length_every": 1, "constant_epochs": 1, "decay_epochs": 2,
                     "reference_prob": 0.5, "max_steps": STEPS},
        "log": {"every": 1, "sample_every": 0, "checkpoint_every": checkpoint_every, "keep_snapshots": False,
                "tensorboard": False, "progress": False},
    })


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, module in (("G", trainer.G), ("D_I", trainer.D_I), ("D_V", trainer.D_V), ("ema", trainer.ema.model)):
        out.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    for name, opt in (("opt_g", trainer.opt_g), ("opt_d", trainer.opt_d)):
        for idx, st in opt.state_dict()["state"].items():
            out.update({f"{name}.{idx}.{k}": v.clone() for k, v in st.items() if torch.is_tensor(v)})
    return out


def _worker(rank: int, world: int, port: int, root: str, run_dir: str, mode: str) -> None:
    """mode: "straight" (no checkpoints), "killed" (SIGKILL after step KILL_AT), "resume"."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = D.init_distributed("cpu")
    try:
        trainer = Trainer(_options(Path(root), 0 if mode == "straight" else SAVE_EVERY), Path(run_dir), info)
        assert isinstance(trainer.loss.G, torch.nn.parallel.DistributedDataParallel)
        if mode == "resume":
            trainer.resume(run_dir)
        if mode == "killed":
            step = trainer.train_step

            def train_step(batch):
                if trainer.step == KILL_AT:  # every process dies here, as under a preempted node
                    os.kill(os.getpid(), signal.SIGKILL)
                return step(batch)

            trainer.train_step = train_step
        trainer.train()
        torch.save(_state(trainer), Path(run_dir) / f"state-{mode}-{rank}.pt")
    finally:
        D.shutdown()


def _spawn(root: Path, run_dir: Path, mode: str) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(root), str(run_dir), mode), nprocs=2, join=True)


def test_two_process_run_killed_mid_way_resumes_exactly(tmp_path):
    root = tmp_path / "data"
    assert cli_main(["make-synthetic", str(root), "--sequences", "4", "--frames", "4", "--size", "64x32"]) == 0
    _spawn(root, tmp_path / "straight", "straight")

    run = tmp_path / "run"
    with pytest.raises(mp.ProcessExitedException):
        _spawn(root, run, "killed")
    saved = json.loads((run / "checkpoints" / "latest" / "train_state.json").read_text())
    assert saved["step"] == SAVE_EVERY and saved["world_size"] == 2 and len(saved["rng"]) == 2
    assert not list(run.glob("state-*.pt"))  # it really died before the end

    _spawn(root, run, "resume")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log][-STEPS + SAVE_EVERY:] == list(range(SAVE_EVERY + 1, STEPS + 1))
    for rank in (0, 1):
        a = torch.load(tmp_path / "straight" / f"state-straight-{rank}.pt", weights_only=True)
        b = torch.load(run / f"state-resume-{rank}.pt", weights_only=True)
        assert a.keys() == b.keys() and any(k.startswith("opt_d.") for k in a)
        for key in a:
            assert torch.equal(a[key], b[key]), (rank, key)
    straight = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert [r["G_total"] for r in straight][-STEPS + SAVE_EVERY:] == [r["G_total"] for r in log][-STEPS + SAVE_EVERY:]
