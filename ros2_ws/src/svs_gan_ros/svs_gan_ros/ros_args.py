"""The node's command line, checked before rclpy.init sees it.

rcl refuses a parameters file it cannot read or a malformed `-p` with an RCLError that carries C
source locations; a user wants one line naming the argument. Plain Python (no rclpy), like params.py.
"""

from __future__ import annotations

import re

import yaml

from svsgan_core.errors import InputError


def check_ros_args(argv: list[str]) -> None:
    """Refuse, in one line naming it, what rcl would refuse in `--ros-args` (a parameters file it cannot
    read or parse, a `-p` that is not name:=value): rcl says it as an RCLError with its source lines."""
    ros, i = False, 0
    while i < len(argv):
        arg, value = argv[i], argv[i + 1] if i + 1 < len(argv) else None
        i += 1
        if arg in ('--ros-args', '--'):
            ros = arg == '--ros-args'
        elif ros and arg == '--params-file':
            i += 1
            try:
                with open(str(value), 'rb') as f:
                    data = yaml.safe_load(f)
            except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else 'not a YAML parameters file'
                raise InputError(
                    f'--params-file {value}: {why}; give a file like config/params.yaml '
                    "(<node name or /**>: {ros__parameters: {name: value}})"
                ) from None
            if not isinstance(data, dict):
                raise InputError(f'--params-file {value}: not a mapping of node names to ros__parameters')
        elif ros and arg in ('-p', '--param'):
            i += 1
            if value is None or not re.match(r'^[^\s:=]+(:[^\s:=]+)?:=', value):
                said = f'{arg} {value}: not a parameter assignment' if value else f'{arg} needs an assignment'
                raise InputError(f'{said}; write {arg} name:=value, e.g. -p checkpoint:=/path/to/checkpoint')


def init_error(exc: Exception) -> str:
    """rcl's refusal of the command line (an RCLError), as one line naming the argument."""
    text = str(exc)
    found = re.search(
        r"Couldn't parse (?:params file|parameter override rule): '(.+?)'\. Error: (.+?)(?:, at |$)", text
    )
    if found:
        return f'{found.group(1)}: {found.group(2)}; see docs/ros.md for the parameters and their form'
    return text.split(', at ')[0]
