"""Training checkpoints: the inference checkpoint (EMA generator) plus everything resume needs.

    checkpoints/<tag>/config.yaml               model config + meta (step, epoch, run)
    checkpoints/<tag>/generator.safetensors     EMA generator: what VideoSynthesizer loads
    checkpoints/<tag>/generator_train.safetensors, d_image.safetensors, d_video.safetensors
    checkpoints/<tag>/train_state.safetensors   optimizer moments, RNG byte states
    checkpoints/<tag>/train_state.json          counters, schedule position, optimizer hyper-parameters,
                                                scaler state, numpy/python RNG states, per process
Tensors go to safetensors and the rest to JSON, so loading never unpickles. The folder is assembled
under a temporary name and renamed into place, so a crash never leaves half a checkpoint.

`save_training` / `resume_training` move a Trainer's whole state to and from such a folder: the
networks (unwrapped, so the files do not depend on the number of processes), optimizers, scalers,
counters and every process's RNG state.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..runtime.checkpoint import (
    GENERATOR_NAME,
    check_state_dict,
    checkpoint_dir,
    read_config,
    read_weights,
    replace_folder,
    save_checkpoint,
)
from . import distributed

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"
EXTRA_MODULES = ("generator_train", "d_image", "d_video")


def optimizer_state(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.{idx}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor],
                         meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[name] = v
    for idx, d in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(d)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> dict[str, Any]:
    """This process's RNG states as plain data (gathered from every process before saving)."""
    np_state = np.random.get_state()
    out = {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        out["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    n = state["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def write_training_checkpoint(path: Path, ema_generator: torch.nn.Module, modules: dict[str, torch.nn.Module],
                              optimizers: dict[str, torch.optim.Optimizer], info: dict[str, Any],
                              meta: dict[str, Any]) -> Path:
    """Write the whole training state into folder `path` atomically (see module doc)."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    save_checkpoint(staging, ema_generator, meta=meta, extra=modules)
    tensors: dict[str, torch.Tensor] = {}
    info = dict(info, optimizers={})
    for name, opt in optimizers.items():
        t, m = optimizer_state(opt, f"opt.{name}")
        tensors.update(t)
        info["optimizers"][name] = m
    save_file(tensors, str(staging / STATE_TENSORS))
    (staging / STATE_JSON).write_text(json.dumps(info))
    replace_folder(staging, path)
    return path


def read_training_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    tfile, jfile = path / STATE_TENSORS, path / STATE_JSON
    if not jfile.is_file() or not tfile.is_file():
        raise CheckpointError(f"{path} holds no training state ({STATE_JSON}, {STATE_TENSORS}); "
                              f"resume needs a checkpoint written by `svsgan train`")
    try:
        return load_file(str(tfile)), json.loads(jfile.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"training state in {path} is corrupt ({exc})") from None


def training_counters(trainer) -> dict[str, Any]:
    """The loop's position and scaler state (train_state.json, without optimizers and RNG)."""
    return {
        "step": trainer.step, "epoch": trainer.epoch, "step_in_epoch": trainer.step_in_epoch,
        "ema_updates": trainer.ema.updates, "world_size": trainer.info.world_size,
        "scaler_g": trainer.scaler_g.state_dict(), "scaler_d": trainer.scaler_d.state_dict(),
    }


def save_training(trainer) -> Path:
    """checkpoints/latest (and a step-N snapshot when the options keep them); every process calls it."""
    rngs = distributed.gather_objects(rng_state(), trainer.info)
    run_dir = Path(trainer.run_dir)
    path = run_dir / "checkpoints" / "latest"
    if trainer.info.is_main:
        meta = {"step": trainer.step, "epoch": trainer.epoch, "run": str(run_dir),
                "trained_with": "svsgan train", "image_size": [trainer.cfg.width, trainer.cfg.height]}
        info = dict(training_counters(trainer), rng=rngs)
        modules = {"generator_train": trainer.G, "d_image": trainer.D_I, "d_video": trainer.D_V}
        optimizers = {"g": trainer.opt_g, "d": trainer.opt_d}
        write_training_checkpoint(path, trainer.ema.model, modules, optimizers, info, meta)
        if trainer.opts.log.keep_snapshots:
            write_training_checkpoint(run_dir / "checkpoints" / f"step-{trainer.step:07d}", trainer.ema.model,
                                      modules, optimizers, info, meta)
    distributed.barrier(trainer.info)
    return path


def resume_training(trainer, path: str | Path) -> Path:
    """Continue exactly where checkpoint `path` (a run folder or checkpoint folder) stopped."""
    ckpt = checkpoint_dir(path)  # a run folder means its checkpoints/latest
    cfg, _ = read_config(ckpt)
    if cfg.to_dict() != trainer.cfg.to_dict():
        raise CheckpointError(f"{ckpt} holds a different model than these options describe")
    tensors, info = read_training_state(ckpt)
    for module, name in ((trainer.G, "generator_train.safetensors"), (trainer.ema.model, GENERATOR_NAME),
                         (trainer.D_I, "d_image.safetensors"), (trainer.D_V, "d_video.safetensors")):
        sd = read_weights(ckpt, name)
        check_state_dict(module, sd, str(ckpt / name))
        module.load_state_dict(sd)
    load_optimizer_state(trainer.opt_g, "opt.g", tensors, info["optimizers"]["g"])
    load_optimizer_state(trainer.opt_d, "opt.d", tensors, info["optimizers"]["d"])
    trainer.scaler_g.load_state_dict(info["scaler_g"])
    trainer.scaler_d.load_state_dict(info["scaler_d"])
    trainer.step, trainer.epoch, trainer.step_in_epoch = info["step"], info["epoch"], info["step_in_epoch"]
    trainer.ema.updates = info["ema_updates"]
    rngs = info.get("rng") or []
    if len(rngs) == trainer.info.world_size:
        set_rng_state(rngs[trainer.info.rank])
    elif trainer.info.is_main:
        print(f"svsgan train: checkpoint written by {len(rngs)} processes, resuming with "
              f"{trainer.info.world_size}: RNG states are not restored (the loop's own draws still are)")
    if trainer.info.is_main:
        print(f"svsgan train: resumed from {ckpt} at step {trainer.step} (epoch {trainer.epoch})")
    return ckpt
