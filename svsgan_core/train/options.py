"""Training options: one YAML file per run (training/configs), `--set a.b=value` overrides, validation.

The resolved options are written beside every run (options.yaml), so a run folder says exactly how
it was trained and `--resume` needs nothing else.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..losses.total import LossConfig
from ..models.config import PRECISIONS, PRESETS, ModelConfig, preset


@dataclass
class RunOptions:
    name: str = "svsgan"
    out_dir: str = "runs"  # a new run goes to <out_dir>/<NNNNN>-<name> unless --run-dir names it
    seed: int = 0


@dataclass
class ModelOptions:
    preset: str = "512x256"
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields on top of the preset
    # resolution stage (Section 4.1): start from this lower-resolution run or checkpoint and grow() into
    # the model above; weights of G (raw and EMA), D_I and D_V are carried over
    init_from: str | None = None

    def config(self) -> ModelConfig:
        base = preset(self.preset).to_dict()
        unknown = sorted(set(self.overrides) - set(base))
        if unknown:
            raise InputError(f"model.overrides: unknown ModelConfig field(s) {', '.join(unknown)}")
        base.update(self.overrides)
        return ModelConfig(**base)


@dataclass
class DataOptions:
    kind: str = "folder"  # svsgan_core.data.datasets.DATASETS
    root: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # more build_dataset arguments (augment, split, ...)
    with_flow: bool = True  # load pseudo-GT flow (needed by the flow and occlusion losses)
    num_workers: int = 0
    sample_root: str | None = None  # held-out clips for the sample videos (default: the training data)


@dataclass
class OptimOptions:
    lr: float = 2e-4
    lr_g: float | None = None  # default: lr (lr / 2 with ttur)
    lr_d: float | None = None  # default: lr (2 lr with ttur)
    ttur: bool = False  # two time-scale update rule (Heusel et al. 2017), as SPADE uses it
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    batch_size: int = 1  # clips per process
    frames_per_step: int = 6  # frames generated per G/D update; earlier frames of the clip are detached
    ema_decay: float = 0.999
    precision: str = "fp32"  # fp32 | bf16 | fp16 autocast; CUDA only, the CPU always trains in fp32

    def learning_rates(self) -> tuple[float, float]:
        lr_g = self.lr_g if self.lr_g is not None else (self.lr / 2 if self.ttur else self.lr)
        lr_d = self.lr_d if self.lr_d is not None else (self.lr * 2 if self.ttur else self.lr)
        return float(lr_g), float(lr_d)


@dataclass
class ScheduleOptions:
    """Section 4.1: sequence length grows every `seq_length_every` epochs, then the LR decays linearly."""

    seq_lengths: list[int] = field(default_factory=lambda: [6, 12, 24, 30])
    seq_length_every: int = 5
    constant_epochs: int = 20
    decay_epochs: int = 20
    reference_prob: float = 0.5  # share of steps whose frame 0 is the real frame (else first-frame mode)
    max_steps: int | None = None  # stop early (tests, budgeted runs)
    fade_steps: int = 1000  # resolution stage (model.init_from): steps over which the grown block fades in


@dataclass
class LogOptions:
    every: int = 50  # steps between JSONL/TensorBoard scalars
    sample_every: int = 1000  # steps between sample videos (0: never)
    sample_frames: int = 12
    checkpoint_every: int = 1000  # steps between checkpoints (one is also written at the end)
    keep_snapshots: bool = True  # also keep checkpoints/step-NNNNNNN beside checkpoints/latest
    tensorboard: bool = True
    progress: bool = True


@dataclass
class TrainOptions:
    run: RunOptions = field(default_factory=RunOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    data: DataOptions = field(default_factory=DataOptions)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimOptions = field(default_factory=OptimOptions)
    schedule: ScheduleOptions = field(default_factory=ScheduleOptions)
    log: LogOptions = field(default_factory=LogOptions)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "options") -> "TrainOptions":
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a mapping of sections, got {type(data).__name__}")
        kwargs = {}
        for f in dataclasses.fields(cls):
            section = data.get(f.name, {}) or {}
            if not isinstance(section, dict):
                raise InputError(f"{where}: section {f.name!r} must be a mapping")
            sub = f.default_factory()  # type: ignore[misc]
            known = {g.name for g in dataclasses.fields(sub)}
            unknown = sorted(set(section) - known)
            if unknown:
                raise InputError(f"{where}: unknown key(s) {', '.join(f'{f.name}.{k}' for k in unknown)}; "
                                 f"{f.name} takes {', '.join(sorted(known))}")
            kwargs[f.name] = dataclasses.replace(sub, **{k: _coerce(sub, k, v, f"{where}: {f.name}.{k}")
                                                         for k, v in section.items()})
        extra = sorted(k for k in set(data) - {f.name for f in dataclasses.fields(cls)} if not k.startswith("_"))
        if extra:
            raise InputError(f"{where}: unknown section(s) {', '.join(extra)}; the sections are "
                             f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        opts = cls(**kwargs)
        opts.validate(where)
        return opts

    def validate(self, where: str = "options") -> None:
        if self.model.preset not in PRESETS:
            raise InputError(f"{where}: model.preset {self.model.preset!r} is not one of {', '.join(PRESETS)}")
        self.model.config()
        self.loss.validate()
        o, s = self.optim, self.schedule
        if o.precision not in PRECISIONS:
            raise InputError(f"{where}: optim.precision must be one of {', '.join(PRECISIONS)}")
        if o.batch_size < 1 or o.frames_per_step < 1:
            raise InputError(f"{where}: optim.batch_size and optim.frames_per_step must be at least 1")
        if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            raise InputError(f"{where}: optim.betas must be two numbers in [0, 1)")
        if not 0 <= o.ema_decay < 1:
            raise InputError(f"{where}: optim.ema_decay must be in [0, 1)")
        if not s.seq_lengths or any(int(n) < 1 for n in s.seq_lengths) or s.seq_length_every < 1:
            raise InputError(f"{where}: schedule.seq_lengths must be positive lengths, seq_length_every >= 1")
        if s.constant_epochs < 0 or s.decay_epochs < 0 or s.constant_epochs + s.decay_epochs < 1:
            raise InputError(f"{where}: schedule needs at least one epoch (constant_epochs + decay_epochs)")
        if not 0 <= s.reference_prob <= 1:
            raise InputError(f"{where}: schedule.reference_prob must be in [0, 1]")
        if s.max_steps is not None and s.max_steps < 0:
            raise InputError(f"{where}: schedule.max_steps must be >= 0")
        if s.fade_steps < 0:
            raise InputError(f"{where}: schedule.fade_steps must be >= 0")
        if not self.data.root:
            raise InputError(f"{where}: data.root must name the dataset folder")


def _coerce(obj: Any, name: str, value: Any, where: str) -> Any:
    """YAML reads 2e-4 as a string and users write 1 for 1.0: convert to the field's declared type."""
    kind = {f.name: f.type for f in dataclasses.fields(obj)}[name]
    optional = "None" in kind
    if value is None:
        if optional:
            return None
        raise InputError(f"{where} may not be empty")
    base = kind.replace("| None", "").strip()
    try:
        if base == "float":
            return float(value)
        if base == "int":
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if base == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if base == "str":
            return str(value)
    except (TypeError, ValueError):
        raise InputError(f"{where} must be {base}, got {value!r}") from None
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=1e-4' -> (['optim', 'lr'], 0.0001); the value is parsed as YAML."""
    if "=" not in text:
        raise InputError(f"--set expects key=value (e.g. optim.lr=1e-4), got {text!r}")
    key, value = text.split("=", 1)
    path = [k for k in key.strip().split(".") if k]
    if len(path) < 2:
        raise InputError(f"--set key must be section.field (e.g. optim.lr), got {key!r}")
    try:
        return path, yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise InputError(f"--set {key}: cannot parse {value!r} ({exc})") from None


def check_override_key(path: list[str]) -> None:
    """A --set typo is the command line's, not the config file's: name it there, with what is valid."""
    sections = {f.name: f.default_factory() for f in dataclasses.fields(TrainOptions)}  # type: ignore[misc]
    key = ".".join(path)
    if path[0] not in sections:
        raise InputError(f"--set {key}: unknown section {path[0]!r}; the sections are {', '.join(sections)}")
    fields = {f.name for f in dataclasses.fields(sections[path[0]])}
    if path[1] not in fields:
        raise InputError(f"--set {key}: {path[0]} has no {path[1]!r}; it takes {', '.join(sorted(fields))}")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides or []:
        path, value = parse_override(text)
        check_override_key(path)
        node = data
        for k in path[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {'.'.join(path)}: {k} is not a section")
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"training config {p} not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{p} is not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{p} is not a text (UTF-8 YAML) file; name a training config "
                         "(training/configs/*.yaml)") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: a training config is a mapping of sections (run, model, data, ...)")
    return data


def load_options(path: str | Path | None = None, overrides: list[str] | None = None,
                 base: dict[str, Any] | None = None) -> TrainOptions:
    """Options from a YAML file (or `base`, e.g. a run's saved options) plus `--set` overrides.

    Relative data paths in a config file are taken relative to the current directory (not the file),
    so the commands in docs/training.md work from the repository root.
    """
    data = dict(base or {}) if path is None else read_yaml(path)
    data = apply_overrides(data, overrides or [])
    return TrainOptions.from_dict(data, str(path) if path else "options")


def save_options(opts: TrainOptions, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    data = opts.to_dict()
    if extra:
        data = {**data, "_resolved": extra}
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
