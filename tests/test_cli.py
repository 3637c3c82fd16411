"""The `svsgan` command itself: --version, --help that answers before torch loads, names and flags."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import svsgan_core
from svsgan_core.cli import COMMANDS, main as cli_main
from svsgan_core.commands import PRESET_NAMES
from svsgan_core.models.config import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli_main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"svsgan {svsgan_core.__version__}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "svsgan_core.__version__"}


def test_every_commands_help_answers_without_importing_torch():
    """`svsgan eval --help` took 6-9 s on a busy machine because torch loaded before argparse ran."""
    code = (
        "import sys\n"
        "from svsgan_core.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules)\n"
    )
    loaded = {}
    for argv in (["--version"], ["--help"], *([name, "--help"] for name in COMMANDS)):  # one process each
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300,
                             cwd=ROOT)
        assert out.returncode == 0, out.stderr
        loaded[argv[0]] = out.stdout.strip().splitlines()[-1] == "True"
    assert not [name for name, torch_loaded in loaded.items() if torch_loaded], loaded


def test_preset_names_in_help_are_the_presets_and_a_wrong_one_is_refused(capsys):
    assert set(PRESET_NAMES) == set(PRESETS)
    with pytest.raises(SystemExit):
        cli_main(["info", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in PRESETS)
    assert cli_main(["info", "--preset", "huge"]) == 1
    err = capsys.readouterr().err
    assert "unknown preset 'huge'" in err and all(name in err for name in PRESETS) and "Traceback" not in err


def test_convert_bag_usage_names_convert_bag():
    path = [str(ROOT / "ros2_ws" / "src" / "svs_gan_ros"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    code = "import sys; from svs_gan_ros.convert_bag import main; sys.exit(main(['--help']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(path)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: convert_bag "), out.stdout[:200]


def test_make_synthetic_no_progress_keeps_stderr_quiet(tmp_path, capsys):
    args = ["make-synthetic", "--sequences", "1", "--frames", "2", "--size", "32x16", "--supersample", "1", "--no-flow"]
    assert cli_main([args[0], str(tmp_path / "bar"), *args[1:]]) == 0
    assert "frame" in capsys.readouterr().err  # the bar, when it is wanted
    assert cli_main([args[0], str(tmp_path / "quiet"), *args[1:], "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert printed.err == "" and "wrote 1 sequences" in printed.out
