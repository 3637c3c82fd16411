"""Checkpoints: a folder with `config.yaml` and `generator.safetensors` (and optional extras).

Loading never unpickles: weights are safetensors, the config is YAML read with safe_load. Saving
writes into a temporary folder and renames it into place, so a crash never leaves half a checkpoint.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.nn.utils import parametrize

from ..data.labels import get_label_space
from ..errors import CheckpointError, InputError
from ..models.config import ModelConfig
from ..models.generator import SVSGenerator
from . import preflight

FORMAT = "svsgan-checkpoint"
VERSION = 1
CONFIG_NAME = "config.yaml"
GENERATOR_NAME = "generator.safetensors"


RUN_LATEST = Path("checkpoints") / "latest"  # where `svsgan train` keeps a run's newest checkpoint


def checkpoint_dir(path: str | os.PathLike) -> Path:
    """Accept the folder, its config.yaml or its generator.safetensors, or a training run folder (its
    checkpoints/latest): every entry point loads through here, so `--checkpoint runs/<run>` works everywhere."""
    p = Path(path).expanduser()
    if p.is_file() and p.name in (CONFIG_NAME, GENERATOR_NAME):
        p = p.parent
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}: expected a folder holding {CONFIG_NAME} and {GENERATOR_NAME}")
    if not p.is_dir():
        raise CheckpointError(f"{p} is not a checkpoint folder (expected {CONFIG_NAME} and {GENERATOR_NAME} inside)")
    if not (p / CONFIG_NAME).exists() and (p / RUN_LATEST).is_dir():
        return p / RUN_LATEST
    if not (p / CONFIG_NAME).exists() and (p / "checkpoints").is_dir():
        raise CheckpointError(f"{p} looks like a training run without {RUN_LATEST}: name one of its checkpoints "
                              f"({', '.join(sorted(c.name for c in (p / 'checkpoints').iterdir())) or 'none yet'})")
    return p

MAX_SIDE = 4096  # the paper tops out at 2048x1024; a larger config is a mistake, not a model


def read_config(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """The model configuration and the free-form metadata (training run, label space notes)."""
    cfg, meta, _ = _read_config_file(path)
    return cfg, meta


def read_fade(path: str | os.PathLike) -> float:
    """The generator's fade-in (SVSGenerator.fade) when it was saved mid-fade; 1.0 for a finished model."""
    return _read_config_file(path)[2]


def _read_config_file(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any], float]:
    cfg_path = checkpoint_dir(path) / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path} is missing: a checkpoint folder needs its config file")
    try:
        data = yaml.safe_load(cfg_path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{cfg_path} is not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{cfg_path} is not a text (UTF-8 YAML) file: the checkpoint is damaged or the "
                              "file is something else") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "model" not in data:
        raise CheckpointError(f"{cfg_path} is not an svsgan checkpoint config (format: {FORMAT}, model: ...)")
    if data.get("version", 0) > VERSION:
        raise CheckpointError(f"{cfg_path} has format version {data['version']}; this svsgan reads up to {VERSION}")
    try:
        cfg = ModelConfig.from_dict(_with_legacy_defaults(data["model"]))
    except (InputError, TypeError) as exc:
        raise CheckpointError(f"{cfg_path}: invalid model configuration: {exc}") from None
    size = (cfg.height, cfg.width)
    if not all(isinstance(v, int) and 8 <= v <= MAX_SIDE for v in size):
        raise CheckpointError(f"{cfg_path}: height x width {size[0]} x {size[1]} is outside 8..{MAX_SIDE} "
                              "pixels a side (checked before anything is allocated)")
    try:
        get_label_space(cfg.label_space, "label_space")
    except InputError as exc:
        raise CheckpointError(f"{cfg_path}: invalid model configuration: {exc}") from None
    preflight.check(cfg, str(cfg_path))  # weights and activations within the limit, before anything is built
    fade = data.get("fade", 1.0)
    if isinstance(fade, bool) or not isinstance(fade, (int, float)) or not 0.0 <= fade <= 1.0:
        raise CheckpointError(f"{cfg_path}: fade must be a number in [0, 1] (the grown block's blend), got {fade!r}")
    return cfg, dict(data.get("meta") or {}), float(fade)


def _with_legacy_defaults(model: Any) -> Any:
    """A checkpoint's model config with the behaviour its code had for the keys it predates. Every key was
    added with the old behaviour as its default except the two one commit added together: before them the
    skips were normalised with the decoder features and the output had no composite."""
    if isinstance(model, dict) and "occlusion_composite" not in model:
        return {"normalise_skips": True, "occlusion_composite": False, **model}
    return model


def read_weights(path: str | os.PathLike, name: str = GENERATOR_NAME) -> dict[str, torch.Tensor]:
    file = checkpoint_dir(path) / name
    if not file.is_file():
        raise CheckpointError(f"{file} is missing")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file} is corrupt or truncated ({exc})") from None


def check_state_dict(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights that do not fit the module, naming the first differences."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs config {tuple(v.shape)}"
             for k, v in own.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} with other shapes (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise CheckpointError(f"{where}: the weights do not match the config: " + ", ".join(problems))


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Build the generator its config describes and load its weights."""

    cfg, _, fade = _read_config_file(path)
    state = read_weights(path)
    gen = SVSGenerator(cfg)
    gen.set_fade(fade)
    check_state_dict(gen, state, str(checkpoint_dir(path) / GENERATOR_NAME))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{checkpoint_dir(path) / GENERATOR_NAME}: {len(bad)} weight tensor(s) hold NaN or "
                              f"infinity (e.g. {', '.join(bad[:3])}); they would give black frames")
    gen.load_state_dict(state)
    return gen.to(device)


def save_checkpoint(path: str | os.PathLike, generator: torch.nn.Module, meta: dict[str, Any] | None = None,
                    extra: dict[str, torch.nn.Module] | None = None) -> Path:
    """Write generator (+ `extra` modules, e.g. discriminators) atomically into folder `path`."""
    dest = Path(path).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        config = {"format": FORMAT, "version": VERSION, "model": generator.cfg.to_dict(), "meta": meta or {}}
        fade = float(getattr(generator, "fade", 1.0))
        if fade < 1.0:  # written mid-fade (resolution stage): the blend is part of what the weights compute
            config["fade"] = fade
        (tmp / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False))
        save_file(_contiguous(generator.state_dict()), str(tmp / GENERATOR_NAME))
        for name, module in (extra or {}).items():
            save_file(_contiguous(module.state_dict()), str(tmp / f"{name}.safetensors"))
        replace_folder(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def replace_folder(staging: Path, dest: Path) -> None:
    """Move a fully written `staging` folder to `dest`, replacing any previous one by renames only."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(dest)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def fold_spectral_norm(module: torch.nn.Module) -> torch.nn.Module:
    """Replace spectral-norm parametrizations by the normalised weights they produce (inference only)."""
    for m in module.modules():
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations.keys()):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
    return module


def prepare_for_inference(generator: torch.nn.Module) -> torch.nn.Module:
    """eval mode, spectral norm folded, no gradients: what every inference path runs."""
    generator.eval()
    fold_spectral_norm(generator)
    generator.requires_grad_(False)
    return generator
