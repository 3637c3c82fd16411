#!/usr/bin/env python3
"""The generator node's added latency and throughput against VideoSynthesizer.step, at 512x256 by default.

    python scripts/bench_node.py [--frames 15] [--rounds 4] [--preset tiny | --checkpoint DIR] [--json]

Runs from a source checkout without installing anything beyond rclpy and svsgan's dependencies;
the measurement itself is svs_gan_ros.bench.measure_node_overhead (see its docstring).
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / 'ros2_ws' / 'src' / 'svs_gan_ros'), str(REPO)]

from svs_gan_ros.bench import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
