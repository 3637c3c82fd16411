"""Which CPU inference path is fastest: interleaved A/B of one generator step, all paths in one process.

    python scripts/bench_cpu_paths.py --preset 512x256 --reps 5
    python scripts/bench_cpu_paths.py --preset 512x256 --resolution 128x64 --paths eager,bf16

Paths: eager (fp32, contiguous: the plain PyTorch path), eager_1thread, channels_last, bf16 (CPU
autocast), ort (the exported step in onnxruntime, idle threads sleeping), compile (torch.compile,
inductor with weight freezing; its compile time is printed). Each repetition runs every path once in
turn, so load from other processes hits them alike; the ratios to eager are what to read. This is
what set the CPU defaults in svsgan_core/runtime/backend.py (results: docs/performance.md).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import svsgan_core  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from svsgan_core.runtime.benchmark import load_generator_for  # noqa: E402
from svsgan_core.runtime.export import export_onnx, folded_copy  # noqa: E402

PATHS = ("eager", "eager_1thread", "channels_last", "bf16", "ort", "compile")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="512x256")
    p.add_argument("--resolution", help="WxH working size (default: the preset's)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--paths", default="eager,eager_1thread,channels_last,ort,compile",
                   help=f"comma-separated, from {', '.join(PATHS)}")
    p.add_argument("--json-out")
    args = p.parse_args()
    paths = args.paths.split(",")
    if "eager" not in paths:
        paths.insert(0, "eager")
    gen = load_generator_for(args.preset, None, args.resolution)
    cfg = gen.cfg
    h, w = cfg.height, cfg.width
    torch.manual_seed(1)
    lab = torch.randint(0, cfg.num_classes, (1, h, w))
    img = torch.rand(1, 3, h, w) * 2 - 1
    threads = torch.get_num_threads()
    plain = folded_copy(gen)
    runs = {"eager": lambda: plain(lab, lab, img).image}

    def one_thread():
        torch.set_num_threads(1)
        try:
            return plain(lab, lab, img).image
        finally:
            torch.set_num_threads(threads)

    runs["eager_1thread"] = one_thread
    if "channels_last" in paths:
        cl = folded_copy(gen).to(memory_format=torch.channels_last)
        img_cl = img.contiguous(memory_format=torch.channels_last)
        runs["channels_last"] = lambda: cl(lab, lab, img_cl).image

    def bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return plain(lab, lab, img).image.float()

    runs["bf16"] = bf16
    notes = {}
    tmp = tempfile.TemporaryDirectory(prefix="svsgan-paths-")
    if "ort" in paths:
        import onnxruntime as ort

        t0 = time.perf_counter()
        path = export_onnx(gen, Path(tmp.name) / "step.onnx")
        notes["ort_export_s"] = time.perf_counter() - t0
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feeds = {"prev_image": img.numpy(), "prev_labels": lab.numpy(), "labels": lab.numpy(),
                 "first_frame": np.zeros(1, np.float32)}
        runs["ort"] = lambda: torch.from_numpy(sess.run(None, feeds)[0])
    if "compile" in paths:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        compiled = torch.compile(folded_copy(gen), dynamic=False)
        with torch.inference_mode():
            t0 = time.perf_counter()
            compiled(lab, lab, img)
        notes["compile_s"] = time.perf_counter() - t0
        print(f"compile: {notes['compile_s']:.0f} s", file=sys.stderr)
        runs["compile"] = lambda: compiled(lab, lab, img).image
    runs = {k: v for k, v in runs.items() if k in paths}
    times: dict[str, list[float]] = {k: [] for k in runs}
    load = [os.getloadavg()[0]]
    with torch.inference_mode():
        ref = runs["eager"]()
        diff = {k: float((f().float() - ref).abs().max()) for k, f in runs.items()}
        for r in range(args.reps):
            for k, f in runs.items():
                t0 = time.perf_counter()
                f()
                times[k].append((time.perf_counter() - t0) * 1e3)
            load.append(os.getloadavg()[0])
            print(f"rep {r + 1}/{args.reps}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in times.items()),
                  file=sys.stderr)
    base = statistics.median(times["eager"])
    print(f"{args.preset} at {w}x{h}, {threads} threads, load {min(load):.1f}-{max(load):.1f}")
    print(f"{'path':<15}{'median ms':>11}{'min ms':>10}{'vs eager':>10}{'max |diff|':>12}")
    for k, v in times.items():
        print(f"{k:<15}{statistics.median(v):>11.1f}{min(v):>10.1f}{statistics.median(v) / base:>10.3f}"
              f"{diff[k]:>12.2e}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"preset": args.preset, "resolution": [h, w], "threads": threads, "load": load, "ms": times,
             "max_abs_diff": diff, **notes}, indent=2) + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
