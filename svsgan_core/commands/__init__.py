"""One module per `svsgan` subcommand: `add_arguments(parser)` and `run(args) -> int`.

Nothing here imports torch: `svsgan COMMAND --help` parses before any command loads its implementation.
"""
from __future__ import annotations

import argparse

from .. import DEFAULT_THREADS


# models.config.PRESETS' names, written out so that --help needs no torch (tests/test_cli.py keeps them equal);
# a name outside them is refused by models.config.preset() with the list.
PRESET_NAMES = ("tiny", "small", "512x256", "1024x512")


def add_preset_argument(p, what: str) -> None:
    p.add_argument("--preset", metavar="NAME", help=f"{what}: {', '.join(PRESET_NAMES)} (`svsgan info --preset NAME`)")


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """--threads, the same in every command that runs the generator (the node's num_threads)."""
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                   help=f"CPU threads per process for torch/onnxruntime (default {DEFAULT_THREADS}: "
                        "right when other jobs share the cores; on a machine of its own give more, 0: one per core)")
