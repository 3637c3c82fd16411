"""`ros2 run svs_gan_ros convert_bag ...`: the same offline bag conversion as `svsgan convert`.

Conversion needs no running ROS graph (it reads and writes bag files), so this entry point only
hands its arguments to svsgan_core's `convert` command; it exists so that ROS users find it next to
the node.
"""

from __future__ import annotations

import importlib
import sys

COMMAND = 'svsgan_core.commands.convert'


def _without_ros_args(argv: list[str]) -> list[str]:
    """Drop a `--ros-args ... [--]` block, which `ros2 run` users may add out of habit."""
    if '--ros-args' not in argv:
        return argv
    start = argv.index('--ros-args')
    end = argv.index('--', start) + 1 if '--' in argv[start:] else len(argv)
    return argv[:start] + argv[end:]


def main(argv: list[str] | None = None) -> int:
    argv = _without_ros_args(list(sys.argv[1:] if argv is None else argv))
    try:
        importlib.import_module(COMMAND)
    except ModuleNotFoundError as exc:
        if exc.name not in (COMMAND, 'svsgan_core', 'svsgan_core.commands'):
            raise
        where = (
            'svsgan (svsgan_core) is not installed in this Python: run `pip install -e .` in the '
            'svsgan repository'
            if exc.name == 'svsgan_core'
            else f'this svsgan has no `convert` command yet ({COMMAND} is missing); update svsgan'
        )
        print(f'convert_bag: error: {where}', file=sys.stderr)
        return 2
    from svsgan_core.cli import main as svsgan_main

    return svsgan_main(['convert', *argv], prog='convert_bag')


if __name__ == '__main__':
    sys.exit(main())
