"""What one generated frame costs: parameters, GFLOPs, time, memory, and what the node and bag
conversion add on top of the bare synthesizer. `svsgan bench` is the command line; the numbers in
docs/performance.md come from it.

Definitions (also written into the JSON, so a result file explains itself):
- gflops_per_frame: convolution FLOPs of one continuing-mode step (torch.utils.flop_counter counts
  convolutions and matmuls; the elementwise work is small next to them), counted on the meta device,
  so counting costs no compute. first_frame_gflops is the first-frame mode.
- ms/step: wall time of one `step_batch` over all cameras, as the node and `svsgan convert` call it
  (label checks, resizing, the forward pass, uint8 conversion); ms/frame = ms/step / cameras;
  median and p90 over the timed steps after `warmup` untimed ones (the first of which is a first frame).
- peak memory: CUDA max_memory_allocated over the timed steps; on the CPU the peak resident set
  (Linux VmHWM, reset through /proc/self/clear_refs before the first step) minus the resident set
  before it, i.e. what running adds on top of the loaded weights. No tracemalloc: PyTorch's
  allocations bypass it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..errors import InputError
from ..models import SVSGenerator
from ..models.config import ModelConfig
from ..models.config import preset as make_preset
from .backend import pick_backend
from .checkpoint import load_generator, prepare_for_inference
from .export import export_onnx, resolution_config
from .synthesizer import OnnxSynthesizer, VideoSynthesizer

Log = Callable[[str], None]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- inputs ---------------------------------------------------------------------------------------

def label_stream(frames: int, height: int, width: int, num_classes: int, camera: int = 0) -> list[np.ndarray]:
    """Street-like label maps with a block moving right: fixed content, so runs compare like for like."""
    maps = []
    for k in range(frames):
        ids = np.zeros((height, width), np.uint8)
        ids[: height * 3 // 10] = 10 % num_classes
        ids[height * 3 // 10: height // 2] = (2 + camera) % num_classes
        ids[height // 2:] = 0
        x = (k * max(1, width // 40) + camera * width // 7) % max(1, width // 2)
        ids[height // 2: height * 3 // 4, x: x + width // 4] = 13 % num_classes
        maps.append(ids)
    return maps


def load_generator_for(preset: str | None, checkpoint: str | os.PathLike | None,
                       resolution: str | None = None, seed: int = 0) -> torch.nn.Module:
    """The generator to measure: a checkpoint, or a preset with random weights (speed does not
    depend on the weights), working at `resolution` (WIDTHxHEIGHT) when given."""
    if (preset is None) == (checkpoint is None):
        raise InputError("name either --preset or --checkpoint")
    if checkpoint is not None:
        gen = load_generator(checkpoint)
    else:
        torch.manual_seed(seed)
        gen = SVSGenerator(make_preset(preset))
    gen.cfg = resolution_config(gen.cfg, resolution)
    return gen


# -- what is measured -----------------------------------------------------------------------------

def count_parameters(generator: torch.nn.Module) -> int:
    return sum(p.numel() for p in generator.parameters())


def count_gflops(cfg: ModelConfig) -> dict[str, float]:
    """Convolution GFLOPs of one frame (batch 1) in both modes, on the meta device (no compute)."""
    with torch.device("meta"):
        gen = prepare_for_inference(SVSGenerator(cfg))
        seg = torch.zeros(1, cfg.num_classes, cfg.height, cfg.width)
        img = torch.zeros(1, 3, cfg.height, cfg.width)
    out = {}
    for mode in ("first_frame", "continuing"):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            gen(seg) if mode == "first_frame" else gen(seg, seg, img)
        out[mode] = counter.get_total_flops() / 1e9
    return out


class PeakMemory:
    """Peak memory over a block: CUDA allocator peak, or the CPU resident-set peak (see module doc)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.method = ""
        self.peak_mb: float | None = None
        self.total_mb: float | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.method = "cuda max_memory_allocated - memory_allocated before the first step"
        else:
            self._base = _status_kb("VmRSS")
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM to the current resident set
                self.method = "CPU peak resident set (VmHWM, reset via /proc/self/clear_refs) - resident set before"
                self._reset = True
            except OSError:
                self.method = "CPU peak resident set of the whole process (VmHWM could not be reset) - resident set before"
                self._reset = False
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.peak_mb, self.total_mb = (peak - self._base) / 2**20, peak / 2**20
        else:
            hwm = _status_kb("VmHWM")
            if hwm is not None and self._base is not None:
                self.peak_mb, self.total_mb = (hwm - self._base) / 1024, hwm / 1024


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def time_synthesizer(synth, cameras: int, frames: int, warmup: int, label: str, log: Log) -> dict[str, Any]:
    """Stream `warmup + frames` steps over `cameras` streams; time the last `frames`."""
    h, w = synth.resolution
    n = synth.cfg.num_classes
    total = warmup + frames
    maps = [label_stream(total, h, w, n, camera=c) for c in range(cameras)]
    streams = [synth.stream() for _ in range(cameras)]
    times = []
    with PeakMemory(synth.device) as mem:
        for k in range(total):
            batch = [maps[c][k] for c in range(cameras)]
            t0 = time.perf_counter()
            synth.step_batch(batch, streams)
            dt = (time.perf_counter() - t0) * 1e3
            if k >= warmup:
                times.append(dt)
            phase = "warm-up" if k < warmup else "timed"
            log(f"  {label}: step {k + 1}/{total} ({phase}) {dt:9.1f} ms")
    median = statistics.median(times)
    return {
        "ms_per_step_median": median,
        "ms_per_step_p90": _percentile(times, 90),
        "ms_per_frame_median": median / cameras,
        "ms_per_frame_p90": _percentile(times, 90) / cameras,
        "frames_per_s": 1e3 * cameras / median,
        "peak_memory_mb": mem.peak_mb,
        "peak_memory_total_mb": mem.total_mb,
        "peak_memory_method": mem.method,
        "step_ms": times,
    }


# -- the whole benchmark --------------------------------------------------------------------------

@dataclasses.dataclass
class BenchOptions:
    preset: str | None = "tiny"
    checkpoint: str | None = None
    resolution: str | None = None
    device: str = "auto"
    precision: str = "auto"
    channels_last: str = "auto"  # auto | on | off
    compile: str | None = None
    optimize: str = "auto"
    backend: str = "auto"  # which one the overhead measurements use; both are timed when it is onnxruntime
    cameras: int = 1
    frames: int = 10
    warmup: int = 2
    threads: int | None = None
    onnx: bool = False
    overhead: bool = True
    overhead_frames: int = 10
    seed: int = 0


def run_benchmark(opts: BenchOptions, log: Log = _stderr) -> dict[str, Any]:
    """Measure everything `svsgan bench` reports, in one process; returns a JSON-ready dict."""
    if opts.cameras < 1 or opts.frames < 1 or opts.warmup < 1:
        raise InputError("--cameras, --frames and --warmup must be at least 1 (the first step is a first frame)")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    cl = {"on": True, "off": False}.get(opts.channels_last, opts.channels_last)
    log(f"building the generator ({opts.checkpoint or 'preset ' + str(opts.preset)})")
    gen = load_generator_for(opts.preset, opts.checkpoint, opts.resolution, opts.seed)
    cfg = gen.cfg
    result: dict[str, Any] = {
        "model": opts.checkpoint or f"preset {opts.preset} (random weights)",
        "resolution": {"height": cfg.height, "width": cfg.width},
        "parameters": count_parameters(gen),
        "machine": machine_info(),
        "options": dataclasses.asdict(opts),
        "definitions": __doc__.split("Definitions", 1)[1].strip(),
    }
    log("counting FLOPs (meta device)")
    flops = count_gflops(cfg)
    result["gflops_per_frame"] = flops["continuing"]
    result["first_frame_gflops"] = flops["first_frame"]
    result["load_before"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    synth = VideoSynthesizer(gen, opts.device, opts.precision, cl, opts.compile, opts.optimize)
    backend = pick_backend(opts.backend, synth.settings, opts.optimize)
    result["settings"] = dataclasses.asdict(synth.settings)
    result["backend"] = backend
    result["threads"] = torch.get_num_threads()
    log(f"timing PyTorch: {synth.settings.describe()}, {opts.cameras} camera(s), "
        f"{cfg.width}x{cfg.height}, {opts.warmup} warm-up + {opts.frames} timed steps")
    t0 = time.perf_counter()
    result["pytorch"] = time_synthesizer(synth, opts.cameras, opts.frames, opts.warmup, "pytorch", log)
    result["pytorch"]["wall_s"] = time.perf_counter() - t0
    fastest = synth
    with tempfile.TemporaryDirectory(prefix="svsgan-bench-onnx-") as tmp:
        if opts.onnx or backend == "onnxruntime":
            result["onnx"], osynth = _bench_onnx(gen, synth, opts, Path(tmp), log)
            if backend == "onnxruntime" and osynth is not None:
                fastest = osynth
        if opts.overhead:
            result["conversion_overhead"] = _conversion_overhead(fastest, opts, log)
            result["node_overhead"] = _node_overhead(opts, fastest, log)
    result["load_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return result


def _bench_onnx(gen, synth, opts: BenchOptions, tmp: Path, log: Log):
    """The exported step in onnxruntime, timed the same way right after PyTorch."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        log(f"skipping ONNX: {exc} (pip install 'svsgan[export]')")
        return {"skipped": str(exc)}, None
    log("exporting the step graph to ONNX")
    t0 = time.perf_counter()
    path = export_onnx(gen, tmp / "step.onnx")
    export_s = time.perf_counter() - t0
    providers = "auto" if synth.device.type == "cuda" else ["CPUExecutionProvider"]
    osynth = OnnxSynthesizer(path, providers=providers, threads=opts.threads)
    log(f"timing onnxruntime ({', '.join(osynth.providers)})")
    out = time_synthesizer(osynth, opts.cameras, opts.frames, opts.warmup, "onnxruntime", log)
    out["export_s"] = export_s
    out["providers"] = osynth.providers
    return out, osynth


def _conversion_overhead(synth, opts: BenchOptions, log: Log) -> dict[str, Any]:
    try:
        from ..io.conversion import measure_conversion_overhead
    except ImportError as exc:
        log(f"skipping the bag-conversion overhead: {exc}")
        return {"skipped": f"svsgan_core.io.conversion.measure_conversion_overhead not available ({exc})"}
    log(f"measuring bag conversion against the bare synthesizer ({opts.overhead_frames} frames)")
    h, w = synth.resolution
    try:
        return measure_conversion_overhead(synth, frames=opts.overhead_frames, height=h, width=w)
    except ImportError as exc:  # rosbags not installed
        log(f"skipping the bag-conversion overhead: {exc}")
        return {"skipped": str(exc)}


def _node_overhead(opts: BenchOptions, synth, log: Log) -> dict[str, Any]:
    try:
        from svs_gan_ros.bench import measure_node_overhead
    except ImportError as exc:
        log(f"skipping the node overhead: {exc}")
        return {"skipped": f"svs_gan_ros.bench.measure_node_overhead not available ({exc})"}
    h, w = synth.resolution
    log(f"measuring the ROS node against the bare synthesizer ({opts.overhead_frames} frames)")
    try:
        out = measure_node_overhead(frames=opts.overhead_frames, width=w, height=h, preset=opts.preset or "tiny",
                                    checkpoint=opts.checkpoint, device=str(synth.device),
                                    threads=torch.get_num_threads(), rounds=2, warmup=opts.warmup,
                                    log=lambda s: log("  node: " + s))
    except ImportError as exc:  # rclpy / sensor_msgs not installed
        log(f"skipping the node overhead: {exc}")
        return {"skipped": str(exc)}
    out["note"] = "the node is a separate process loading the same weights with from_checkpoint defaults"
    return out


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "logical_cpus": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- output ---------------------------------------------------------------------------------------

def table(result: dict[str, Any]) -> str:
    """The human-readable summary `svsgan bench` prints."""
    r = result["resolution"]
    lines = [
        f"model        {result['model']}",
        f"resolution   {r['width']}x{r['height']}   parameters {result['parameters'] / 1e6:.2f} M   "
        f"GFLOPs/frame {result['gflops_per_frame']:.1f} (first frame {result['first_frame_gflops']:.1f})",
        f"machine      {result['machine']['cpu']}"
        + (f" + {result['machine']['gpu']}" if result["machine"].get("gpu") else "")
        + f", {result['threads']} threads, load {result['load_before']:.1f} -> {result['load_after']:.1f}",
        f"settings     {result['settings']}; from_checkpoint picks {result['backend']}",
        "",
        f"{'path':<14}{'ms/frame':>10}{'p90':>10}{'frames/s':>10}{'peak MB':>10}",
    ]
    for key in ("pytorch", "onnx"):
        m = result.get(key)
        if not m or "skipped" in m:
            continue
        peak = f"{m['peak_memory_mb']:.0f}" if m.get("peak_memory_mb") is not None else "-"
        name = key if key == "pytorch" else "onnxruntime"
        lines.append(f"{name:<14}{m['ms_per_frame_median']:>10.1f}{m['ms_per_frame_p90']:>10.1f}"
                     f"{m['frames_per_s']:>10.2f}{peak:>10}")
    if "onnx" in result and "skipped" not in result["onnx"]:
        ratio = result["pytorch"]["ms_per_frame_median"] / result["onnx"]["ms_per_frame_median"]
        lines.append(f"onnxruntime is {ratio:.2f}x the speed of PyTorch here")
    conv = result.get("conversion_overhead")
    if conv:
        lines.append("")
        if "skipped" in conv:
            lines.append(f"bag conversion: skipped ({conv['skipped']})")
        else:
            lines.append(f"bag conversion: {conv['convert_fps']:.2f} frames/s vs bare {conv['bare_fps']:.2f} "
                         f"({conv['overhead_pct']:+.1f} %)")
    node = result.get("node_overhead")
    if node:
        if "skipped" in node:
            lines.append(f"ROS node:       skipped ({node['skipped']})")
        else:
            lines.append("ROS node:       " + ", ".join(
                f"{k} {node[k]:+.1f}" + (" %" if k.endswith("pct") else " ms")
                for k in ("added_latency_ms", "latency_overhead_pct", "throughput_overhead_pct") if k in node))
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return out
