"""Speed of the procedural street-video generator (svsgan_core.data.synthetic).

    python scripts/bench_synthetic.py --size 256x128 --frames 30 --sequences 6
    python scripts/bench_synthetic.py --size 256x128 --frames 30 --supersample 2 --flow

Prints one JSON object: wall and CPU seconds per sequence (mean and best over seeds 0..N-1) and a
reference timing of a plain numpy operation, so numbers from a shared, busy machine can be judged
(the reference is about 10 us on an idle core).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from svsgan_core.commands.make_synthetic import parse_size
    from svsgan_core.data.synthetic import generate_sequence

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="256x128", help="WIDTHxHEIGHT (default 256x128)")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--sequences", type=int, default=6, help="sequences (seeds 0..N-1) to time")
    p.add_argument("--supersample", type=int, default=1)
    p.add_argument("--flow", action="store_true", help="also compute the exact flow")
    args = p.parse_args(argv)
    width, height = parse_size(args.size)

    generate_sequence(1000, 2, height, width)  # imports and first-call costs out of the way
    wall, cpu = [], []
    for seed in range(args.sequences):
        w, c = time.perf_counter(), time.process_time()
        generate_sequence(seed, args.frames, height, width, return_flow=args.flow, supersample=args.supersample)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    a = np.random.default_rng(0).random(32768).astype(np.float32)
    start = time.perf_counter()
    for _ in range(2000):
        a * 1.5 + a
    reference_us = (time.perf_counter() - start) / 2000 * 1e6
    result = {
        "size": [width, height], "frames": args.frames, "supersample": args.supersample, "flow": args.flow,
        "wall_s_mean": round(float(np.mean(wall)), 3), "wall_s_best": round(min(wall), 3),
        "cpu_s_mean": round(float(np.mean(cpu)), 3), "cpu_s_best": round(min(cpu), 3),
        "reference_numpy_us": round(reference_us, 1),
    }
    print(json.dumps(result))
    print(f"{args.frames} frames {width}x{height}: {result['wall_s_best']:.2f} s best, {result['wall_s_mean']:.2f} s "
          f"mean (reference op {reference_us:.0f} us; ~10 us idle)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
