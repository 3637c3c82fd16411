"""Which inference fast paths to use on which machine, and applying them to a generator.

`resolve()` turns "auto" into concrete settings. The CPU choices are measured, not assumed (numbers
and the command that gives them: docs/performance.md); the CUDA choices are the usual ones for a
convolutional generator on tensor cores, to be confirmed with `svsgan bench --device cuda`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import DEFAULT_THREADS
from ..errors import InputError
from ..models.config import PRECISIONS

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
OPTIMIZE = ("auto", "none")

# CPU choices, measured on the development machine (2-core AMD EPYC Zen 3, AVX2; docs/performance.md,
# scripts/bench_cpu_paths.py): channels_last took 1.06-1.11x the contiguous time for the 512x256
# generator; bf16 autocast has no native kernels without AVX512-BF16/AMX and took ~100x, with visibly
# different frames. The fastest CPU path is not PyTorch at all: see pick_backend.
CPU_CHANNELS_LAST = False
CPU_PRECISION = "fp32"


def set_threads(threads: int | None = None) -> int:
    """Set this process's intra-op CPU threads (torch, and onnxruntime, which follows torch's count):
    None means the project's default (DEFAULT_THREADS), 0 leaves torch's own (one per core). Returns the
    count in force."""
    n = DEFAULT_THREADS if threads is None else threads
    if not isinstance(n, int) or n < 0:
        raise InputError(f"threads must be 0 (one per core) or a positive number, got {threads!r}")
    if n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


@dataclass(frozen=True)
class Settings:
    """Concrete inference settings; "auto" never survives `resolve()`."""

    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    compile: str | None = None  # a torch.compile mode, or None for eager

    def describe(self) -> str:
        return (f"{self.device} {self.precision}{' channels_last' if self.channels_last else ''}"
                f"{' compile=' + self.compile if self.compile else ''}")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def usable_devices() -> list[str]:
    """The device types this PyTorch build can really run on here (an MPS or XPU build is not enough)."""
    have = ["cpu"]
    if cuda_available():
        have.append(f"cuda (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        have.append("mps")
    return have


def resolve_device(device: str | torch.device | None = "auto", what: str = "device") -> torch.device:
    """"auto" (or None) is the first CUDA device when there is one, else the CPU. Any other name must be
    a device this PyTorch can use here (`what` names the option or parameter in the error)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is not None and (dev.type == "cpu" or dev.type == "mps" and "mps" in usable_devices() or (
            dev.type == "cuda" and cuda_available() and (dev.index or 0) < torch.cuda.device_count())):
        return dev
    no_cuda = dev is not None and dev.type == "cuda" and not cuda_available()
    why = " (this PyTorch sees no CUDA device)" if no_cuda else ""
    raise InputError(f"{what} {str(device)!r} is not available{why}; this PyTorch can use: "
                     f"{', '.join(usable_devices())} (or auto)")


def resolve(device: str | torch.device | None = "auto", precision: str | None = None,
            channels_last: bool | str | None = None, compile: str | None = None,
            optimize: str = "auto") -> Settings:
    """Fill every unset (None or "auto") choice: with the fastest known one for `optimize="auto"`,
    with the plain reference path (fp32, contiguous, eager) for `optimize="none"`. Explicit values win."""
    if optimize not in OPTIMIZE:
        raise InputError(f"optimize must be one of {', '.join(OPTIMIZE)}, not {optimize!r}")
    dev = resolve_device(device)
    auto = optimize == "auto"
    if precision in (None, "auto"):
        precision = ("fp16" if dev.type == "cuda" else CPU_PRECISION) if auto else "fp32"
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)} or auto, not {precision!r}")
    if dev.type == "cpu" and precision == "fp16":
        raise InputError("fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
    if channels_last in (None, "auto"):
        channels_last = (dev.type == "cuda" or CPU_CHANNELS_LAST) if auto else False
    if compile in ("", "none", "off"):
        compile = None
    if compile is not None and compile not in COMPILE_MODES:
        raise InputError(f"compile mode must be one of {', '.join(COMPILE_MODES)} (or none), not {compile!r}")
    return Settings(str(dev), precision, bool(channels_last), compile)


BACKENDS = ("auto", "torch", "onnxruntime")


def onnxruntime_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def pick_backend(backend: str, settings: Settings, optimize: str = "auto") -> str:
    """"auto" runs the exported graph in onnxruntime where that is the fastest measured path: on the
    CPU in fp32 (1.5-1.6x PyTorch eager for the paper generators here, docs/performance.md) when onnxruntime is installed and
    no PyTorch-only choice (channels_last, compile) was asked for; PyTorch everywhere else."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "onnxruntime":
        if settings.precision != "fp32" or settings.compile or settings.channels_last:
            raise InputError("the onnxruntime backend runs the fp32 graph: drop precision/channels_last/compile "
                             "or use backend='torch'")
        return backend
    if backend == "torch" or optimize != "auto":
        return "torch"
    if settings.device != "cpu" or settings.precision != "fp32" or settings.channels_last or settings.compile:
        return "torch"
    return "onnxruntime" if onnxruntime_available() else "torch"


def apply(generator: torch.nn.Module, settings: Settings) -> torch.nn.Module:
    """Move an inference-prepared generator to its device and memory format, compile it if asked."""
    dev = torch.device(settings.device)
    generator = generator.to(dev)
    if settings.channels_last:
        generator = generator.to(memory_format=torch.channels_last)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed frame sizes: pick the fastest conv algorithm once
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if settings.compile:
        if settings.compile in ("reduce-overhead", "max-autotune") and dev.type != "cuda":
            raise InputError(f"compile mode {settings.compile!r} uses CUDA graphs; on the CPU use 'default'")
        generator = torch.compile(generator, mode=settings.compile, dynamic=False)
    return generator


def uses_cuda_graphs(settings: Settings) -> bool:
    """Outputs of a CUDA-graph replay are overwritten by the next replay: callers must copy what they keep."""
    return settings.device.startswith("cuda") and settings.compile in ("reduce-overhead", "max-autotune")
