"""Export the per-frame generator step to ONNX (spectral norm folded), check it against PyTorch in
onnxruntime, and optionally build a TensorRT engine from it.

The graph: prev_image (Bx3xHxW float, [-1, 1]), prev_labels and labels (BxHxW int64 class ids),
first_frame (B float, 1 = first frame of a sequence) -> image (Bx3xHxW float, [-1, 1]); + edges and
prev_edges with an instance-edge channel, + anchor_image and anchor_labels with a class palette, + slots
and anchor_slots with its objects (palette_instances). B is dynamic, H x W fixed (--resolution).
Details: svsgan_core/runtime/export.py, docs/performance.md.

Examples:
  svsgan export runs/city/ckpt gen.onnx
  svsgan export --preset 1024x512 gen-1024.onnx            (random weights: for speed tests)
  svsgan export CKPT gen.onnx --resolution 2048x1024 --tensorrt gen.plan --max-batch 4
"""
from __future__ import annotations

import argparse
import time

from . import add_preset_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", help="checkpoint folder (config.yaml + generator.safetensors)")
    p.add_argument("output", help="the .onnx file to write")
    add_preset_argument(p, "random-weight preset instead of a checkpoint")
    p.add_argument("--resolution", metavar="WxH", help="fixed input/output size (default: the model's)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 or newer (default 17)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch (cameras) at 1 instead of dynamic")
    p.add_argument("--verify-frames", type=int, default=3,
                   help="frames to compare with PyTorch in onnxruntime after export (0: skip)")
    p.add_argument("--tensorrt", metavar="ENGINE", help="also build a TensorRT engine (needs tensorrt and a GPU)")
    p.add_argument("--max-batch", type=int, default=4, help="largest camera batch the TensorRT engine accepts")
    p.add_argument("--no-fp16", dest="fp16", action="store_false", help="build the TensorRT engine in fp32")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..runtime.benchmark import load_generator_for
    from ..runtime.export import (
        build_tensorrt_engine,
        compare_with_pytorch,
        export_onnx,
        read_onnx_config,
        trtexec_command,
    )

    if args.preset and args.checkpoint:
        raise InputError("name either a checkpoint folder or --preset, not both")
    gen = load_generator_for(args.preset, None if args.preset else args.checkpoint)
    t0 = time.perf_counter()
    path = export_onnx(gen, args.output, resolution=args.resolution, opset=args.opset,
                       dynamic_batch=not args.static_batch)
    cfg = read_onnx_config(path)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {cfg.width}x{cfg.height}, opset {args.opset}) "
          f"in {time.perf_counter() - t0:.1f} s")
    if args.verify_frames > 0:
        diffs = compare_with_pytorch(gen, path, frames=args.verify_frames)
        worst = max(diffs)
        print(f"onnxruntime vs PyTorch over {len(diffs)} frames: max |difference| {worst:.2e}")
        if worst > 1e-3:
            raise InputError(f"the exported graph differs from PyTorch by {worst:.2e} (> 1e-3); please report this")
    trt_line = trtexec_command(path, args.tensorrt or path.with_suffix(".plan"), cfg, args.max_batch, args.fp16)
    if args.tensorrt:
        engine = build_tensorrt_engine(path, args.tensorrt, max_batch=args.max_batch, fp16=args.fp16)
        print(f"wrote TensorRT engine {engine}")
    else:
        print(f"TensorRT (on a CUDA machine): {trt_line}")
    return 0
