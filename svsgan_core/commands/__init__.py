"""One module per `svsgan` subcommand: `add_arguments(parser)` and `run(args) -> int`.

Nothing here imports torch: `svsgan COMMAND --help` parses before any command loads its implementation.
"""
from __future__ import annotations

import argparse

from .. import DEFAULT_THREADS


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """--threads, the same in every command that runs the generator (the node's num_threads)."""
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                   help=f"CPU threads per process for torch/onnxruntime (default {DEFAULT_THREADS}: "
                        "right when other jobs share the cores; on a machine of its own give more, 0: one per core)")
