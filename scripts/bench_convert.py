"""Conversion frames/s against bare synthesizer frames/s, measured in one run (svsgan_core.io.conversion).

    python scripts/bench_convert.py --preset 512x256 --size 256x512 --frames 20
    python scripts/bench_convert.py --checkpoint svsgan_core/assets/demo_checkpoint --size 128x256 --frames 60

Random weights (--preset) cost the same as trained ones, so they measure speed honestly. Prints one
JSON object (and a summary line on stderr); `svsgan bench` calls the same function.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="checkpoint folder (default: random weights of --preset)")
    p.add_argument("--preset", default="tiny", help="model preset for random weights (default: tiny)")
    p.add_argument("--size", default="128x256", help="input frames HEIGHTxWIDTH (default: 128x256)")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--storage", choices=("db3", "mcap"), default="mcap")
    p.add_argument("--compressed", action="store_true", help="also write the JPEG topic")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs; the best of each counts")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)

    import torch

    from svsgan_core.io.conversion import measure_conversion_overhead
    from svsgan_core.runtime.synthesizer import VideoSynthesizer

    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = (int(v) for v in args.size.lower().split("x"))
    synth = (VideoSynthesizer.from_checkpoint(args.checkpoint, args.device) if args.checkpoint
             else VideoSynthesizer.from_preset(args.preset, device=args.device))
    numbers = measure_conversion_overhead(synth, frames=args.frames, height=height, width=width,
                                          storage=args.storage, compressed=args.compressed, repeats=args.repeats)
    numbers["model"] = args.checkpoint or f"preset {args.preset} (random weights)"
    print(json.dumps(numbers, indent=2))
    print(f"bare {numbers['bare_fps']:.2f} frames/s, conversion {numbers['convert_fps']:.2f} frames/s: "
          f"{numbers['overhead_pct']:+.1f}% ({numbers['model']}, {width}x{height} input, {args.storage})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
