"""The `svsgan` command: one subcommand per job, each in its own module.

Subcommand modules are imported only when used, so `svsgan --help` stays fast and a missing optional
extra (rosbags, onnx, carla, ...) only matters for the subcommand that needs it. Each module exposes
`add_arguments(parser)` and `run(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from . import __version__
from .errors import REPORT_BUGS, debug_requested, user_message

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("svsgan_core.commands.info", "print a preset's or checkpoint's configuration and parameter counts"),
    "demo": ("svsgan_core.commands.demo", "run the whole pipeline on the bundled sequence (or your bag) and show the result"),
    "train": ("svsgan_core.commands.train", "train SVS-GAN from a YAML config (works under torchrun)"),
    "prepare-flow": ("svsgan_core.commands.prepare_flow", "compute and cache pseudo-ground-truth optical flow for a dataset"),
    "pseudo-label": ("svsgan_core.commands.pseudo_label", "label every frame of an image tree with a segmentation network (Cityscapes, KITTI-360, RGB-only drives)"),
    "make-synthetic": ("svsgan_core.commands.make_synthetic", "write procedural synthetic street sequences as a dataset folder"),
    "convert": ("svsgan_core.commands.convert", "add generated camera topics to ROS 2 bags (.db3/.mcap), offline, no ROS needed"),
    "extract": ("svsgan_core.commands.extract", "turn a recorded bag (RGB + semantic camera) into a training dataset"),
    "eval": ("svsgan_core.commands.eval", "compute FID, FVD, mIoU, temporal consistency and FPS for a checkpoint"),
    "bench": ("svsgan_core.commands.bench", "measure speed, FLOPs and memory of the generator and its node/conversion overhead"),
    "export": ("svsgan_core.commands.export", "export the per-frame generator step to ONNX (and TensorRT where available)"),
    "carla": ("svsgan_core.commands.carla", "drive a CARLA server directly and publish or record generated frames"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svsgan",
        description="SVS-GAN semantic video synthesis: turn semantic-segmentation video into "
        "photorealistic, temporally coherent frames. Run `svsgan demo` to see it work.",
    )
    parser.add_argument("--version", action="version", version=f"svsgan {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of any error; also after the command, or SVSGAN_DEBUG=1")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`prog`: the name a wrapper runs one command under (`convert_bag`), for its usage line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    debug_first = bool(argv) and argv[0] == "--debug"  # `svsgan --debug train ...` as well as `svsgan train ... --debug`
    if debug_first:
        argv = argv[1:]
    if argv and argv[0] == "--version":
        parser.parse_args(argv[:1])  # prints the version and exits
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            parser.print_usage(sys.stderr)
            print(f"svsgan: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(
        prog=prog or f"svsgan {name}",
        description=(module.__doc__ or help_text).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(sub)
    sub.add_argument("--debug", action="store_true", help="show the traceback of any error (also: SVSGAN_DEBUG=1)")
    args = sub.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"svsgan {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last net: one line for the user's errors, a report for bugs
        return report_error(f"svsgan {name}", exc, debug_first or args.debug or debug_requested())


def report_error(prog: str, exc: Exception, debug: bool = False) -> int:
    """One line for an error the user can fix (with its traceback under --debug); a traceback and
    where to report it for anything else. Returns the exit status, 1."""
    message = user_message(exc)
    if message is None or debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"{prog}: error: {message}" if message is not None else f"{prog}: {REPORT_BUGS}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
