"""Measure the generator: parameters, GFLOPs/frame, ms/frame (median, p90), frames/s and peak memory,
optionally beside the exported ONNX step in onnxruntime, and what the ROS node and bag conversion add
over the bare synthesizer in the same run. Prints a table and writes JSON.

Examples:
  svsgan bench --preset tiny
  svsgan bench --preset 1024x512 --frames 5 --warmup 1 --onnx --no-overhead --json-out bench-1024.json
  svsgan bench --checkpoint CKPT --device cuda --precision fp16 --cameras 4 --compile reduce-overhead

Progress goes to stderr; the table to stdout. Definitions: svsgan_core/runtime/benchmark.py, docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import add_preset_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    add_preset_argument(src, "random-weight preset to measure (default: tiny)")
    src.add_argument("--checkpoint", help="checkpoint folder to measure instead of a preset")
    p.add_argument("--resolution", metavar="WxH", help="working size, e.g. 1024x512 (default: the model's)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="autocast precision (auto: fp16 on CUDA, fp32 on CPU)")
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"],
                   help="channels_last memory format (auto: on for CUDA, off on CPU where it measured slower)")
    p.add_argument("--compile", default=None, metavar="MODE",
                   help="torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune, "
                        "max-autotune-no-cudagraphs (default: eager)")
    p.add_argument("--optimize", default="auto", choices=["auto", "none"],
                   help="auto: fastest known path for what is not set explicitly; none: plain fp32 eager")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"],
                   help="the path the overhead measurements use (auto: what from_checkpoint picks; "
                        "onnxruntime is then timed too)")
    p.add_argument("--cameras", type=int, default=1, help="cameras batched into one forward pass")
    p.add_argument("--frames", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (the first is a first frame)")
    p.add_argument("--threads", type=int, default=None, help="torch/onnxruntime CPU threads (default: cores)")
    p.add_argument("--onnx", action="store_true", help="also export the step to ONNX and time it in onnxruntime")
    p.add_argument("--no-overhead", dest="overhead", action="store_false",
                   help="skip the node and bag-conversion overhead measurements")
    p.add_argument("--overhead-frames", type=int, default=10, help="frames for the overhead measurements")
    p.add_argument("--json-out", default="bench.json", help="where to write the JSON result (default: bench.json)")
    p.add_argument("--json", action="store_true", help="print the JSON to stdout instead of the table")


def run(args: argparse.Namespace) -> int:
    from ..runtime.benchmark import BenchOptions, run_benchmark, table, write_json

    opts = BenchOptions(
        preset=args.preset if args.preset or args.checkpoint else "tiny", checkpoint=args.checkpoint,
        resolution=args.resolution, device=args.device, precision=args.precision,
        channels_last=args.channels_last, compile=args.compile, optimize=args.optimize, backend=args.backend,
        cameras=args.cameras,
        frames=args.frames, warmup=args.warmup, threads=args.threads, onnx=args.onnx, overhead=args.overhead,
        overhead_frames=args.overhead_frames,
    )
    result = run_benchmark(opts)
    path = write_json(result, args.json_out)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(table(result))
    print(f"wrote {path}", file=sys.stderr)
    return 0
