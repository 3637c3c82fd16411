"""Hostile input gets one clear line, loses nothing and costs no more memory than the work (issue 26).

The cases are those a hostile-input matrix found mishandled: each must now end in one line naming
the value, what is allowed and what to do, with a non-zero exit and no traceback; memory must stay
near what the work needs (checked in child processes, with their own VmHWM/VmPeak).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import yaml

from svsgan_core.cli import main
from svsgan_core.errors import CheckpointError, InputError

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def one_line(capsys, rc, *parts) -> str:
    """The command failed with exit status 1 and said so in one stderr line holding every part."""
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if 'exporting' not in line]
    assert rc == 1 and 'Traceback' not in err and len(lines) == 1, err
    for part in parts:
        assert part in err, (part, err)
    return err


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    """A small checkpoint, a 3-frame bag (palette camera, ids camera) and a shared ONNX cache."""
    from test_bags import IDS_CAM, PALETTE_CAM, small_config, write_input

    from svsgan_core.models import SVSGenerator
    from svsgan_core.runtime.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp('hostile')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('SVSGAN_CACHE_DIR', str(root / 'cache'))
        torch.manual_seed(0)
        ckpt = save_checkpoint(root / 'ckpt', SVSGenerator(small_config()))
        bag = write_input(root / 'in', 'mcap', 'jazzy', frames=3)
        yield SimpleNamespace(ckpt=ckpt, bag=bag, palette=PALETTE_CAM, ids=IDS_CAM, root=root)


def convert(env, out, *extra, maps=None):
    maps = maps or [f'{env.palette}:/gen']
    args = ['convert', str(env.bag), str(out), '--checkpoint', str(env.ckpt), '--no-progress']
    for m in maps:
        args += ['--map', m]
    return main(args + list(extra))


def nothing_written(folder: Path, out: Path) -> None:
    assert not out.exists() and not [p for p in folder.iterdir() if 'partial' in p.name]


# -- the last net in every entry point ---------------------------------------------------------------------

@pytest.mark.parametrize('exc, part', [
    (OverflowError('int too large to convert to float'), 'a number is too large to use'),
    (MemoryError(), 'out of memory'),
    (UnicodeDecodeError('utf-8', b'\xff', 0, 1, 'invalid start byte'), 'a file that should be text is binary or not UTF-8'),
    (OSError(40, 'Too many levels of symbolic links', '/x/y'), 'Too many levels of symbolic links: /x/y'),
])
def test_expected_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys, exc, part):
    from svsgan_core.commands import info

    def fail(args):
        raise exc

    monkeypatch.setattr(info, 'run', fail)
    one_line(capsys, main(['info', 'tiny']), f'svsgan info: error: {part}')
    for args, env_value in ((['info', 'tiny', '--debug'], ''), (['info', 'tiny'], '1')):
        monkeypatch.setenv('SVSGAN_DEBUG', env_value)
        assert main(args) == 1
        err = capsys.readouterr().err
        assert 'Traceback' in err and err.strip().splitlines()[-1].startswith('svsgan info: error: '), err


def test_a_bug_keeps_its_traceback_and_says_where_to_report_it(monkeypatch, capsys):
    from svsgan_core.commands import info

    monkeypatch.setattr(info, 'run', lambda args: {}['no such key'])
    assert main(['info', 'tiny']) == 1
    err = capsys.readouterr().err
    assert 'Traceback' in err and "KeyError: 'no such key'" in err
    assert 'this is a bug in svsgan: please report it' in err.strip().splitlines()[-1]
