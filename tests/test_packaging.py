"""Installed as a user installs a Python tool (issue 15): the wheel, without extras, runs the main job.

The wheel is built from a copy of this checkout with the build backend already installed (no build isolation,
no index: nothing is downloaded) and installed with --no-deps into a fresh venv that sees this
machine's packages (torch, rosbags, ...) but not the checkout: PYTHONPATH is dropped and the venv's
own site-packages comes first, which the test checks through svsgan_core.__file__.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def test_the_wheel_installed_without_extras_runs_svsgan_demo(tmp_path):
    # from a copy without build outputs: an in-tree build/ would carry files the metadata no longer names
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "ros2_ws", "runs", "demo_output"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          str(src), "-w", str(tmp_path / "dist")], cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("svsgan-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.startswith("svsgan_core/assets/demo_bag/") for n in names), "the demo's bag is not packaged"
    base = [Requirement(line.split(":", 1)[1].strip()) for line in metadata.splitlines()
            if line.startswith("Requires-Dist:")]
    base = {r.name: r for r in base if r.marker is None}  # what a plain `pip install svsgan` gets
    assert "rosbags" in base, "reading and writing bags is the main job: rosbags is a core dependency"
    assert not any(s.operator in ("<", "<=", "==", "~=") for s in base["torch"].specifier), \
        f"the metadata caps torch ({base['torch']}): a newer (GPU) torch would be refused"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # --ignore-installed: the checkout's own (editable) install is visible through the system site-packages
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          "--ignore-installed", str(wheel)])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SVSGAN_CACHE_DIR"] = str(tmp_path / "cache")
    where = _run([str(python), "-c", "import svsgan_core; print(svsgan_core.__file__)"], env=env, cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the wheel, not the checkout
    out = tmp_path / "demo"
    _run([str(venv / "bin" / "svsgan"), "demo", "--frames", "3", "--out", str(out), "--no-progress"],
         env=env, cwd=tmp_path)
    assert (out / "bag").is_dir() and (out / "contact_sheet.png").is_file()
    assert "converted 3 frames" in (out / "summary.txt").read_text()
