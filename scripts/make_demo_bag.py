"""Regenerate the bundled demo bag (svsgan_core/assets/demo_bag) from the procedural scene generator.

Deterministic: the same arguments write the same bytes (with the same rosbags, OpenCV and zstd
versions, and the same scene generator in svsgan_core/data/synthetic.py), so the committed bag can
be checked against this script. The defaults are the committed bag's: the semantic camera (bgra8
CityScapesPalette) with camera_info and /clock, and the RGB camera beside it as image_transport's
JPEG (quality 90, `--rgb-jpeg 0` leaves it out): the demo's reference frame.

    python scripts/make_demo_bag.py            # rewrite the bundled bag
    python scripts/make_demo_bag.py --out /tmp/demo_bag --frames 12
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from svsgan_core.commands.demo import DEMO_BAG  # noqa: E402
from svsgan_core.io.synthetic_bag import write_semantic_bag  # noqa: E402

DEFAULTS = {"frames": 60, "height": 128, "width": 256, "seed": 1, "fps": 20.0, "rgb_jpeg": 90}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(DEMO_BAG), help=f"bag folder to write (default: {DEMO_BAG})")
    for name, value in DEFAULTS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=f"(default: {value})")
    args = p.parse_args(argv)
    path = write_semantic_bag(args.out, frames=args.frames, height=args.height, width=args.width, seed=args.seed,
                              fps=args.fps, rgb_jpeg=args.rgb_jpeg or None, storage="mcap", chunk_compression=True,
                              overwrite=True)
    size = sum(f.stat().st_size for f in path.iterdir())
    camera = f" with the RGB camera (JPEG {args.rgb_jpeg})" if args.rgb_jpeg else " without an RGB camera"
    print(f"wrote {path}: {args.frames} frames of {args.width}x{args.height}{camera}, {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
