"""Training checkpoints: the inference checkpoint (EMA generator) plus everything resume needs.

    checkpoints/<tag>/config.yaml               model config + meta (step, epoch, run)
    checkpoints/<tag>/generator.safetensors     EMA generator: what VideoSynthesizer loads
    checkpoints/<tag>/generator_train.safetensors, d_image.safetensors, d_video.safetensors
    checkpoints/<tag>/train_state.safetensors   optimizer moments, RNG byte states
    checkpoints/<tag>/train_state.json          counters, schedule position, optimizer hyper-parameters,
                                                scaler state, numpy/python RNG states, per process
Tensors go to safetensors and the rest to JSON, so loading never unpickles. The folder is assembled
under a temporary name and renamed into place, so a crash never leaves half a checkpoint.
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

from svsgan_core.checkpoint import replace_folder, save_checkpoint
from svsgan_core.errors import CheckpointError

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
