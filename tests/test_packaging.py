"""Installed as a user installs a Python tool (issue 15): the wheel, without extras, runs the main job.

The wheel is built from a copy of this checkout with the build backend already installed (no build isolation,
no index: nothing is downloaded) and installed with --no-deps into a fresh venv that sees the packages of
the interpreter running the tests (torch, rosbags, ...) but not the checkout: PYTHONPATH is dropped and
the venv's own site-packages comes first, which the test checks through svsgan_core.__file__.

`venv --system-site-packages` would not do: run from inside a virtualenv (the README's set-up), "system"
means the base interpreter, which has no torch. The new venv gets this interpreter's site-packages folders
as plain path entries instead (a .pth file), whether it is a system Python or itself a venv.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
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


def _install_arguments(command: str) -> list[str]:
    """What `[python3 -m] pip install [--options] ARGS` installs."""
    words = shlex.split(command)
    return [w for w in words[words.index("install") + 1:] if not w.startswith("--")]


def test_readme_has_a_lean_demo_command_and_the_test_command_ci_runs():
    """The README's two commands: the lean package and the demo; what the tests need and the tests (.ci/run)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    setup, tests = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    install, demo = setup.split(" && ")
    assert demo == "svsgan demo" and _install_arguments(install)[1:] == ["-e", "."], setup  # no extras: lean
    install_all, run_tests = tests.split(" && ")
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    ci_install = next(line for line in ci if " pip install " in f" {line}")
    assert _install_arguments(ci_install) == _install_arguments(install_all)
    assert run_tests.replace("python ", "python3 ", 1) in ci, "CI must run the README's test command"
    pins = {_install_arguments(c)[0] for c in (install, install_all, ci_install)}
    docker = re.search(r"^ARG TORCH_VERSION=(\S+)$", (ROOT / "docker" / "Dockerfile").read_text(), re.M).group(1)
    assert pins == {f"torch=={docker}"}, (pins, docker)  # one tested torch everywhere
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme  # how to get a CPU-only torch elsewhere


def test_the_wheel_installed_without_extras_runs_svsgan_demo(tmp_path):
    # from a copy without build outputs: an in-tree build/ would carry files the metadata no longer names
    src = tmp_path / "src"
    anywhere = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")
    top = {".git", "ros2_ws", "runs", "demo_output", ".venv", "venv", "data", "weights"}  # a user's, in the clone

    def ignore(folder, names):
        return set(anywhere(folder, names)) | (top & set(names) if Path(folder) == ROOT else set())

    shutil.copytree(ROOT, src, ignore=ignore)
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
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    venv_site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))  # ordered, without repeats
    (venv_site / "_running_interpreters_packages.pth").write_text("\n".join(ours) + "\n")
    # --ignore-installed: the checkout's own (editable) install is visible through those folders
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
