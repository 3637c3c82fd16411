"""svs_gan_ros's launch files and docker/: the files parse, use only real API names with the right arguments, and every
path, package, launch argument and command they name exists.

launch and launch_ros have no PyPI wheels and no Docker engine runs here, so the launch files are
checked statically against the signatures below (taken from ros2/launch and ros2/launch_ros, Jazzy)
and built for real only where launch_ros is importable; the Dockerfile and compose files are parsed,
not built.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import shlex
import sys
import tomllib
import types
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
NODE_PACKAGE = ROOT / "ros2_ws" / "src" / "svs_gan_ros"
LAUNCH_FILES = sorted((NODE_PACKAGE / "launch").glob("*.launch.py"))

# name -> (positional parameters, keyword parameters). Every Action also takes `condition`.
ACTION_KW = {"condition"}
API = {
    "launch.LaunchDescription": (("initial_entities",), {"initial_entities", "deprecated_reason"}),
    "launch.actions.DeclareLaunchArgument": (("name",), {"default_value", "description", "choices"} | ACTION_KW),
    "launch.actions.IncludeLaunchDescription": (("launch_description_source",), {"launch_arguments"} | ACTION_KW),
    "launch.actions.ExecuteProcess": ((), {
        "cmd", "prefix", "name", "cwd", "env", "additional_env", "shell", "sigterm_timeout", "sigkill_timeout",
        "emulate_tty", "output", "output_format", "cached_output", "log_cmd", "on_exit", "respawn",
        "respawn_delay"} | ACTION_KW),
    "launch.actions.OpaqueFunction": ((), {"function", "args", "kwargs"} | ACTION_KW),
    "launch.actions.GroupAction": (("actions",), {"scoped", "forwarding", "launch_configurations"} | ACTION_KW),
    "launch.actions.SetEnvironmentVariable": (("name", "value"), ACTION_KW),
    "launch.actions.LogInfo": ((), {"msg"} | ACTION_KW),
    "launch.actions.Shutdown": ((), {"reason"} | ACTION_KW),
    "launch.conditions.IfCondition": (("predicate_expression",), set()),
    "launch.conditions.UnlessCondition": (("predicate_expression",), set()),
    "launch.launch_description_sources.PythonLaunchDescriptionSource": (("launch_file_path",), set()),
    "launch.substitutions.LaunchConfiguration": (("variable_name",), {"default"}),
    "launch.substitutions.PathJoinSubstitution": (("substitutions",), set()),
    "launch.substitutions.TextSubstitution": ((), {"text"}),
    "launch.substitutions.PythonExpression": (("expression",), {"python_modules"}),
    "launch_ros.actions.Node": ((), {
        "executable", "package", "name", "namespace", "exec_name", "parameters", "remappings", "ros_arguments",
        "arguments", "output", "emulate_tty", "respawn", "respawn_delay", "on_exit"} | ACTION_KW),
    "launch_ros.substitutions.FindPackageShare": (("package",), set()),
}
ALLOWED_MODULES = {"launch", "launch.actions", "launch.conditions", "launch.launch_description_sources",
                   "launch.substitutions", "launch_ros.actions", "launch_ros.substitutions", "os",
                   "ament_index_python.packages"}

# Launch arguments of the packages the top-level files include (not installable here): from
# carla-simulator/ros-bridge (carla_ros_bridge.launch.py, carla_spawn_objects'
# carla_example_ego_vehicle.launch.py); both install their launch files directly into share/<package>.
FOREIGN_LAUNCH_ARGUMENTS = {
    ("carla_ros_bridge", "carla_ros_bridge.launch.py"): {
        "host", "port", "timeout", "passive", "synchronous_mode", "synchronous_mode_wait_for_vehicle_control_command",
        "fixed_delta_seconds", "town", "register_all_sensors", "ego_vehicle_role_name"},
    ("carla_spawn_objects", "carla_example_ego_vehicle.launch.py"): {
        "objects_definition_file", "spawn_point_ego_vehicle", "spawn_sensors_only"},
}


# ------------------------------------------------------------------------------------------------
# static reading of a launch file

class LaunchFile:
    def __init__(self, path: Path):
        self.path = path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.names: dict[str, str] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    self.names[alias.asname or alias.name] = alias.name
        self.imports = {v.rsplit(".", 1)[0] if v.count(".") else v for v in self.names.values()}

    def calls(self, qualified: str) -> list[ast.Call]:
        short = [k for k, v in self.names.items() if v == qualified]
        return [n for n in ast.walk(self.tree)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in short]

    def api_calls(self):
        for qualified in API:
            for call in self.calls(qualified):
                yield qualified, call

    def declared(self) -> dict[str, ast.Call]:
        return {c.args[0].value: c for c in self.calls("launch.actions.DeclareLaunchArgument")
                if c.args and isinstance(c.args[0], ast.Constant)}

    def default_of(self, name: str) -> str | None:
        for kw in self.declared()[name].keywords:
            if kw.arg == "default_value" and isinstance(kw.value, ast.Constant):
                return kw.value.value
        return None

    def configurations(self) -> set[str]:
        """Names read with LaunchConfiguration, also through a comprehension over a literal tuple."""
        names = set()
        for comp in ast.walk(self.tree):
            if isinstance(comp, (ast.DictComp, ast.ListComp)):
                for gen in comp.generators:
                    if isinstance(gen.iter, ast.Tuple) and isinstance(gen.target, ast.Name):
                        used = any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "LaunchConfiguration"
                                   and isinstance(n.args[0], ast.Name) and n.args[0].id == gen.target.id
                                   for n in ast.walk(comp))
                        if used:
                            names |= {e.value for e in gen.iter.elts}
        for c in self.calls("launch.substitutions.LaunchConfiguration"):
            if isinstance(c.args[0], ast.Constant):
                names.add(c.args[0].value)
            else:
                assert isinstance(c.args[0], ast.Name), f"{self.path.name}:{c.lineno}: unreadable LaunchConfiguration"
        return names

    def includes(self) -> list[tuple[tuple[str, ...], set[str]]]:
        """(path parts of the included file, launch argument names passed) for each include."""
        out = []
        for call in self.calls("launch.actions.IncludeLaunchDescription"):
            joins = [n for n in ast.walk(call.args[0]) if isinstance(n, ast.List)]
            parts = []
            for elt in joins[0].elts:
                if isinstance(elt, ast.Constant):
                    parts.append(elt.value)
                elif isinstance(elt, ast.Call) and elt.func.id in self.names and \
                        self.names[elt.func.id] == "launch_ros.substitutions.FindPackageShare":
                    parts.append("pkg:" + elt.args[0].value)
            passed = set()
            for kw in call.keywords:
                if kw.arg == "launch_arguments":
                    for node in ast.walk(kw.value):
                        if isinstance(node, ast.Dict):
                            passed |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
                        if isinstance(node, ast.Tuple) and node.elts and isinstance(node.elts[0], ast.Constant):
                            passed.add(node.elts[0].value)
                        if isinstance(node, (ast.DictComp, ast.ListComp)):
                            for gen in node.generators:
                                if isinstance(gen.iter, ast.Tuple):
                                    passed |= {e.value for e in gen.iter.elts}
            out.append((tuple(parts), passed))
        return out

    def overridden_include_arguments(self) -> list[str]:
        """Include arguments given anything but the including file's own argument of that name: a literal
        ('label_encoding': 'carla_raw') silently beats what the user passed on the command line."""
        bad = []
        for call in self.calls("launch.actions.IncludeLaunchDescription"):
            for kw in call.keywords:
                if kw.arg != "launch_arguments":
                    continue
                pairs = []
                for node in ast.walk(kw.value):
                    if isinstance(node, ast.Dict):
                        pairs += zip(node.keys, node.values)
                    elif isinstance(node, ast.DictComp):
                        pairs.append((node.key, node.value))
                    elif isinstance(node, ast.ListComp) and isinstance(node.elt, ast.Tuple):
                        pairs.append(tuple(node.elt.elts))
                    elif isinstance(node, ast.List):
                        pairs += [tuple(t.elts) for t in node.elts if isinstance(t, ast.Tuple)]
                for key, value in pairs:
                    same = (isinstance(value, ast.Call) and getattr(value.func, "id", None) in self.names
                            and self.names[value.func.id] == "launch.substitutions.LaunchConfiguration"
                            and ast.dump(value.args[0]) == ast.dump(key))
                    if not same:
                        bad.append(f"{self.path.name}:{value.lineno}: {ast.unparse(key)} is given {ast.unparse(value)}")
        return bad


def node_launch_arguments() -> set[str]:
    """The arguments svs_gan_ros's generate.launch.py declares (its ARGUMENTS table and literal ones)."""
    assert (NODE_PACKAGE / "package.xml").is_file(), "the svs_gan_ros package is missing"
    path = NODE_PACKAGE / "launch" / "generate.launch.py"
    assert path.is_file(), "svs_gan_ros must ship launch/generate.launch.py"
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in node.targets):
            names |= set(ast.literal_eval(node.value))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument" and \
                node.args and isinstance(node.args[0], ast.Constant):
            names.add(node.args[0].value)
    return names


@pytest.fixture(scope="module", params=LAUNCH_FILES, ids=lambda p: p.name)
def launch_file(request):
    return LaunchFile(request.param)


def test_the_three_launch_files_exist():
    assert {p.name for p in LAUNCH_FILES} >= {"generate.launch.py", "carla_bridge.launch.py",
                                              "carla_native.launch.py", "bag_replay.launch.py"}


def test_top_level_launch_shows_the_system_entry_points_as_links_to_the_installed_files():
    """The design's top-level launch/ holds the system's launch files; `ros2 launch svs_gan_ros FILE` needs
    them in the package (share/): each top-level entry is a link to the package's file, never a copy."""
    top = sorted((ROOT / "launch").glob("*.launch.py"))
    assert {p.name for p in top} == {p.name for p in LAUNCH_FILES}
    for path in top:
        assert path.is_symlink(), f"{path} is a copy that can drift from the installed file"
        assert path.resolve() == (NODE_PACKAGE / "launch" / path.name).resolve(), path
        assert not Path(os.readlink(path)).is_absolute(), f"{path}: an absolute link breaks in another checkout"
    readme = (ROOT / "launch" / "README.md").read_text()
    assert all(f"`{p.name}`" in readme for p in top)


def test_launch_file_uses_only_real_launch_api_with_valid_arguments(launch_file):
    lf = launch_file
    funcs = [n.name for n in lf.tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in funcs
    assert lf.imports <= ALLOWED_MODULES, lf.imports - ALLOWED_MODULES
    unknown = {v for v in lf.names.values() if v.startswith("launch") and v not in API}
    assert not unknown, f"{lf.path.name} uses launch names outside the checked API: {unknown}"
    for qualified, call in lf.api_calls():
        positional, keywords = API[qualified]
        assert len(call.args) <= len(positional), f"{qualified}: too many positional arguments"
        given = {k.arg for k in call.keywords if k.arg is not None}
        for k in call.keywords:  # **{...}: the literal keys of the dict(s) expanded
            if k.arg is None:
                given |= {key.value for d in ast.walk(k.value) if isinstance(d, ast.Dict) for key in d.keys}
        bad = given - keywords - set(positional)
        assert not bad, f"{lf.path.name}:{call.lineno} {qualified} has no parameter {bad}"


def test_every_launch_configuration_is_declared_and_defaults_fit_choices(launch_file):
    declared = launch_file.declared()
    assert launch_file.configurations() <= set(declared), launch_file.configurations() - set(declared)
    for name, call in declared.items():
        kws = {k.arg: k.value for k in call.keywords}
        assert "description" in kws, f"{name}: describe every argument"
        if "choices" in kws and isinstance(kws.get("default_value"), ast.Constant):
            assert kws["default_value"].value in ast.literal_eval(kws["choices"]), name


def test_included_launch_files_exist_and_get_only_their_own_arguments(launch_file):
    # what the user passes reaches the included file: each argument is the including file's own
    assert not launch_file.overridden_include_arguments()
    for parts, passed in launch_file.includes():
        if parts[0] == "pkg:svs_gan_ros":
            node_args = node_launch_arguments()
            assert (NODE_PACKAGE / Path(*parts[1:])).is_file(), parts
            assert passed <= node_args, f"generate.launch.py does not declare {passed - node_args}"
            assert "checkpoint" in passed and "use_sim_time" in passed
            # every node argument this file declares is handed on by name, not left to launch's shared
            # configurations (a scoped include, or another default in generate.launch.py, would lose it)
            own = set(launch_file.declared()) & node_args
            assert own <= passed, f"{launch_file.path.name} declares but does not pass {own - passed}"
        else:
            key = (parts[0].removeprefix("pkg:"), parts[-1])
            assert key in FOREIGN_LAUNCH_ARGUMENTS, parts
            assert passed <= FOREIGN_LAUNCH_ARGUMENTS[key], passed - FOREIGN_LAUNCH_ARGUMENTS[key]


def svsgan_carla_parser() -> argparse.ArgumentParser:
    from svsgan_core.commands import carla

    p = argparse.ArgumentParser(prog="svsgan carla", exit_on_error=False)
    carla.add_arguments(p)
    return p


def parse_svsgan_carla(argv: list[str]) -> argparse.Namespace:
    def fail(message):
        raise AssertionError(f"svsgan carla {argv}: {message}")

    p = svsgan_carla_parser()
    p.error = fail
    return p.parse_args(argv)


def launch_argv(lf: LaunchFile, cmd: ast.List, given: dict[str, str]) -> list[str]:
    """An ExecuteProcess cmd as launch would perform it: literals, LaunchConfiguration (the given value
    or the declared default) and PythonExpression (its parts joined, then evaluated)."""
    def text(node) -> str:
        if isinstance(node, ast.Constant):
            return node.value
        kind = lf.names[node.func.id]
        if kind == "launch.substitutions.LaunchConfiguration":
            name = node.args[0].value
            return given.get(name, lf.default_of(name))
        assert kind == "launch.substitutions.PythonExpression", kind
        return str(eval("".join(text(part) for part in node.args[0].elts), {}))  # noqa: S307 - our own file
    return [text(elt) for elt in cmd.elts]


def test_native_launch_runs_a_real_svsgan_carla_command():
    from svsgan_core.io.carla_client import CarlaConfig

    lf = LaunchFile(NODE_PACKAGE / "launch" / "carla_native.launch.py")
    (call,) = lf.calls("launch.actions.ExecuteProcess")
    cmd = next(k.value for k in call.keywords if k.arg == "cmd")
    argv = launch_argv(lf, cmd, {})
    assert argv[:2] == ["svsgan", "carla"]
    args = parse_svsgan_carla(argv[2:])
    assert args.output == "none" and args.native_ros and args.mode == "sync"
    # the topic the driver makes CARLA publish is the one the node listens to
    assert lf.default_of("input_topic") == f"/carla/{args.role_name}/semantic_segmentation/image"
    assert lf.default_of("instance_topic") == "" and not args.instance_camera  # no instance camera by default
    # naming the instance topic turns the driver's instance camera on: CARLA then publishes that topic
    topic = f"/carla/{args.role_name}/{CarlaConfig().instance_ros_name}/image"
    args = parse_svsgan_carla(launch_argv(lf, cmd, {"instance_topic": topic})[2:])
    assert args.instance_camera and topic == "/carla/hero/instance_segmentation/image"


def test_bridge_objects_file_has_the_camera_the_node_listens_to():
    lf = LaunchFile(NODE_PACKAGE / "launch" / "carla_bridge.launch.py")
    objects = json.loads((NODE_PACKAGE / "config" / "carla_ros_bridge_ego.json").read_text())
    (ego,) = [o for o in objects["objects"] if o["type"].startswith("vehicle.")]
    cameras = {o["id"]: o for o in ego["objects"]}
    assert lf.default_of("input_topic") == f"/carla/{ego['id']}/semantic_segmentation_front/image"
    camera = cameras["semantic_segmentation_front"]
    assert camera["type"] == "sensor.camera.semantic_segmentation"
    assert (camera["image_size_x"], camera["image_size_y"]) == (1024, 512)


def test_bag_replay_builds_a_ros2_bag_play_command_with_clock():
    source = (NODE_PACKAGE / "launch" / "bag_replay.launch.py").read_text()
    assert "'ros2', 'bag', 'play'" in source and "'--clock'" in source and "'--rate'" in source


def _real_launch_available() -> bool:
    for name in ("launch", "launch_ros"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:  # a stray launch/ folder would be a namespace package
            return False
    return True


@pytest.mark.skipif(not _real_launch_available(), reason="launch/launch_ros are not installed (no PyPI wheels)")
def test_launch_files_build_a_launch_description_with_real_launch_ros(launch_file):
    import launch

    spec = importlib.util.spec_from_file_location("launch_file_under_test", launch_file.path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.generate_launch_description(), launch.LaunchDescription)


# ------------------------------------------------------------------------------------------------
# docker

DOCKER_INSTRUCTIONS = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "ENTRYPOINT", "CMD", "LABEL",
                       "EXPOSE", "USER", "VOLUME", "SHELL", "HEALTHCHECK", "STOPSIGNAL", "ONBUILD"}


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and backslash continuations joined."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "dangling line continuation"
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


DOCKERFILE = ROOT / "docker" / "Dockerfile"


def test_dockerfile_parses_and_copies_only_existing_paths():
    instructions = parse_dockerfile(DOCKERFILE)
    assert {i for i, _ in instructions} <= DOCKER_INSTRUCTIONS
    first = next(i for i, (word, _) in enumerate(instructions) if word != "ARG")
    assert instructions[first] == ("FROM", "ros:jazzy-ros-base")
    copies = [shlex.split(a) for w, a in instructions if w == "COPY"]
    assert copies
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for *sources, _dest in copies:
        for src in sources:
            assert not src.startswith("--"), "no COPY flags expected"
            assert (ROOT / src).exists(), f"COPY source {src} is not in the repository"
            assert not any(Path(src).match(pat.rstrip("/")) for pat in ignored), f"{src} is in .dockerignore"
    entry = exec_form(next(a for w, a in instructions if w == "ENTRYPOINT"))
    copied_to = {shlex.split(a)[-1]: shlex.split(a)[0] for w, a in instructions if w == "COPY"}
    script = ROOT / copied_to[entry[0]]
    assert script.is_file() and os.access(script, os.X_OK) and script.read_text().startswith("#!/bin/bash")


def _args(instructions) -> dict[str, str]:
    return dict(a.split("=", 1) for w, a in instructions if w == "ARG")


def test_docker_torch_pin_agrees_with_pyproject_and_extras_exist():
    instructions = parse_dockerfile(DOCKERFILE)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    torch_spec = next(d for d in pyproject["project"]["dependencies"] if d.startswith("torch"))
    assert _args(instructions)["TORCH_VERSION"] in SpecifierSet(torch_spec.removeprefix("torch"))
    runs = " ".join(a for w, a in instructions if w == "RUN")
    assert '"torch==${TORCH_VERSION}"' in runs and '--index-url "${TORCH_INDEX_URL}"' in runs
    extras = re.search(r'pip install "\.\[([a-z,]+)\]"', runs).group(1).split(",")
    assert set(extras) <= set(pyproject["project"]["optional-dependencies"])
    assert "carla" in extras and "bags" in extras
    assert '"numpy<2"' in runs, "ROS 2 Jazzy's compiled message modules need numpy 1.x"


def test_docker_builds_the_workspace_the_entrypoint_sources_and_runs_generate_launch():
    instructions = parse_dockerfile(DOCKERFILE)
    workdir = next(a for w, a in instructions if w == "WORKDIR")
    runs = [a for w, a in instructions if w == "RUN"]
    assert any("colcon build" in r and "cd ros2_ws" in r and ". /opt/ros/jazzy/setup.sh" in r for r in runs)
    entry_script = (ROOT / "docker" / "entrypoint.sh").read_text()
    assert f"source {workdir}/ros2_ws/install/setup.bash" in entry_script
    assert "source /opt/ros/jazzy/setup.bash" in entry_script and 'exec "$@"' in entry_script
    cmd = exec_form(next(a for w, a in instructions if w == "CMD"))
    assert cmd[:4] == ["ros2", "launch", "svs_gan_ros", "generate.launch.py"]
    declared = node_launch_arguments()
    setup = (NODE_PACKAGE / "setup.py").read_text()
    assert "glob('launch/*.launch.py')" in setup, "generate.launch.py must be installed for `ros2 launch`"
    assert {c.split(":=")[0] for c in cmd[4:]} <= declared


def _check_container_command(command: list[str], dockerfile_args: dict[str, str]) -> None:
    """Each command a container runs exists in the image built from this repository."""
    instructions = parse_dockerfile(DOCKERFILE)
    workdir = next(a for w, a in instructions if w == "WORKDIR")
    if command[:2] == ["svsgan", "carla"]:
        parse_svsgan_carla(command[2:])
    elif command[:2] == ["ros2", "launch"]:
        package, target = command[2:4]  # `ros2 launch <package> <file>`: found in the package's share/
        assert package == "svs_gan_ros", command
        local = NODE_PACKAGE / "launch" / target
        assert local.is_file() and local in installed_files()["launch"], target
        declared = set(LaunchFile(local).declared())
        assert {a.split(":=")[0] for a in command[4:]} <= declared, command
    else:
        raise AssertionError(f"unexpected container command {command}")


@pytest.mark.parametrize("name", ["compose.yaml", "compose.cpu.yaml"])
def test_compose_file_has_carla_offscreen_the_node_and_the_client(name):
    compose = yaml.safe_load((ROOT / "docker" / name).read_text())
    services = compose["services"]
    assert set(services) == {"carla", "node", "client"}
    carla = services["carla"]
    assert carla["image"] == "carlasim/carla:0.9.16"
    assert carla["command"][:2] == ["bash", "CarlaUE4.sh"] and "-RenderOffScreen" in carla["command"]
    assert "--ros2" in carla["command"], "the node service reads CARLA's native ROS 2 topics"
    assert carla["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    dockerfile_args = _args(parse_dockerfile(DOCKERFILE))
    for svc in ("node", "client"):
        s = services[svc]
        build = s["build"]
        context = (ROOT / "docker" / build["context"]).resolve()
        assert context == ROOT and (context / build["dockerfile"]).resolve() == DOCKERFILE
        assert set(build.get("args", {})) <= set(dockerfile_args)
        assert s["depends_on"]["carla"]["condition"] == "service_healthy"
        assert any(v.endswith(":/checkpoint:ro") for v in s["volumes"])
        _check_container_command(s["command"], dockerfile_args)
    device = "cpu" if "cpu" in name else "cuda"
    assert f"device:={device}" in services["node"]["command"]
    assert services["client"]["command"][services["client"]["command"].index("--device") + 1] == device
    if device == "cpu":
        assert services["client"]["build"]["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu")
        assert "deploy" not in services["client"]
    else:
        assert services["client"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"


# ------------------------------------------------------------------------------------------------
# generate.launch.py run against stand-in launch modules: every argument reaches the node

def _fake_launch_modules() -> dict[str, object]:
    """Minimal launch/launch_ros stand-ins: each class records its arguments, LaunchConfiguration
    reads the context's launch_configurations as the real one does."""
    import types

    class Recorded:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration(Recorded):
        def perform(self, context):
            return context.launch_configurations[self.args[0]]

    modules = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions",
        "launch_ros.substitutions", "launch.conditions", "launch.launch_description_sources",
        "ament_index_python", "ament_index_python.packages")}
    modules["launch"].LaunchDescription = type("LaunchDescription", (Recorded,), {})
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "ExecuteProcess", "IncludeLaunchDescription"):
        setattr(modules["launch.actions"], name, type(name, (Recorded,), {}))
    modules["launch.conditions"].IfCondition = type("IfCondition", (Recorded,), {})
    modules["launch.launch_description_sources"].PythonLaunchDescriptionSource = type(
        "PythonLaunchDescriptionSource", (Recorded,), {})
    modules["ament_index_python.packages"].get_package_share_directory = lambda package: f"/share/{package}"
    modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    modules["launch.substitutions"].PathJoinSubstitution = type("PathJoinSubstitution", (Recorded,), {})
    modules["launch.substitutions"].PythonExpression = type("PythonExpression", (Recorded,), {})
    modules["launch_ros.actions"].Node = type("Node", (Recorded,), {})
    modules["launch_ros.substitutions"].FindPackageShare = type("FindPackageShare", (Recorded,), {})
    return modules


def _load_launch(monkeypatch, name: str):
    for module_name, module in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, module_name, module)
    spec = importlib.util.spec_from_file_location(f"launch_under_test_{name.split('.')[0]}",
                                                  NODE_PACKAGE / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.generate_launch_description().args[0]


def _load_generate_launch(monkeypatch):
    module, entities = _load_launch(monkeypatch, "generate.launch.py")
    description = types.SimpleNamespace(args=(entities,))
    declared = {a.args[0]: a.kwargs for a in description.args[0] if type(a).__name__ == "DeclareLaunchArgument"}
    (opaque,) = [a for a in description.args[0] if type(a).__name__ == "OpaqueFunction"]
    return module, declared, opaque.kwargs["function"]


def _node_parameters(function, values: dict[str, str]) -> dict:
    context = types.SimpleNamespace(launch_configurations=values)
    (node,) = function(context)
    assert type(node).__name__ == "Node" and node.kwargs["executable"] == "generator_node"
    params_file, overrides = node.kwargs["parameters"]
    assert params_file.args == ("params_file",)
    return overrides


def test_generate_launch_has_num_threads_and_qos_and_every_argument_reaches_a_node_parameter(monkeypatch):
    from svs_gan_ros.params import BY_NAME

    module, declared, function = _load_generate_launch(monkeypatch)
    assert {"num_threads", "input_reliability", "input_depth", "output_reliability", "output_depth"} <= set(declared)
    assert set(declared) == set(module.ARGUMENTS) | {"use_sim_time", "params_file"}
    for name, kwargs in declared.items():
        assert kwargs.get("description"), f"{name}: describe every argument"
    # a value for each argument, valid for its node parameter: numbers for the integer ones
    values = {"use_sim_time": "false", "params_file": "/p.yaml"}
    expected = {"use_sim_time": False}
    for argument, (parameter, _, choices) in module.ARGUMENTS.items():
        param = BY_NAME.get(parameter)
        assert param is not None, f"launch argument {argument} sets {parameter}, which the node does not declare"
        if choices:
            assert choices[0] == "" and set(choices[1:]) == set(param.choices), argument
            assert declared[argument]["choices"] == choices
        if param.int_range:
            text, value = "3", 3
        elif param.choices:
            text = value = param.choices[-1]
        else:
            text = value = f"/given/{argument}"
        values[argument] = text
        is_list = isinstance(param.default, list) or param.default == "string_array"
        expected[parameter] = [value] if is_list else value
    overrides = _node_parameters(function, values)
    assert overrides == expected
    for parameter, value in overrides.items():
        if parameter in BY_NAME:
            default = BY_NAME[parameter].default
            assert type(value) is (list if default == "string_array" else type(default)), (parameter, value)
    # arguments left at '' keep the params file's values
    empty = {name: kwargs.get("default_value", "") for name, kwargs in declared.items()}
    empty.update(use_sim_time="true", params_file="/p.yaml")
    assert _node_parameters(function, empty) == {"use_sim_time": True}


def test_generate_launch_refuses_a_non_integer_num_threads_in_one_line(monkeypatch):
    _, declared, function = _load_generate_launch(monkeypatch)
    values = {name: "" for name in declared}
    values.update(use_sim_time="true", params_file="/p.yaml", num_threads="four")
    with pytest.raises(ValueError, match=r"^launch argument num_threads: expected an integer, got 'four'$"):
        _node_parameters(function, values)


@pytest.mark.parametrize("name,defaults", [
    ("carla_native.launch.py", {"label_encoding": "carla_raw", "use_sim_time": True}),
    ("carla_bridge.launch.py", {"label_encoding": "carla_palette", "use_sim_time": True}),
    ("bag_replay.launch.py", {"label_encoding": "carla_palette", "use_sim_time": True}),
])
def test_system_launch_files_pass_what_the_user_gives_through_to_the_node(monkeypatch, name, defaults):
    """`ros2 launch svs_gan_ros carla_native.launch.py label_encoding:=ids use_sim_time:=false` reaches the
    node as ids / False, as launch resolves it: the command line's values, then each file's declared
    defaults for what is still unset, the include's launch_arguments performed in that context."""
    def node_parameters(given: dict[str, str]) -> dict:
        _, entities = _load_launch(monkeypatch, name)
        configs = dict(given)
        for e in entities:
            if type(e).__name__ == "DeclareLaunchArgument" and "default_value" in e.kwargs:
                configs.setdefault(e.args[0], e.kwargs["default_value"])
        context = types.SimpleNamespace(launch_configurations=configs)
        (include,) = [e for e in entities if type(e).__name__ == "IncludeLaunchDescription"
                      and "generate.launch.py" in e.args[0].args[0].args[0]]
        passed = {k: v.perform(context) if hasattr(v, "perform") else v
                  for k, v in list(include.kwargs["launch_arguments"])}
        configs.update(passed)
        _, declared, function = _load_generate_launch(monkeypatch)
        for argument, kwargs in declared.items():
            configs.setdefault(argument, kwargs.get("default_value", ""))
        return _node_parameters(function, configs)

    required = {"checkpoint": "/ckpt", "bag": "/bag"}
    chosen = node_parameters(dict(required))
    assert {k: chosen[k] for k in defaults} == defaults
    chosen = node_parameters(dict(required, label_encoding="ids", use_sim_time="false", label_space="carla"))
    assert (chosen["label_encoding"], chosen["use_sim_time"], chosen["checkpoint"]) == ("ids", False, "/ckpt")
    assert chosen["label_space"] == "carla"  # not declared by the CARLA files: generate.launch.py's, from the line
    assert "instance_topics" not in chosen  # no instance topic unless given: the params file's (none) holds
    chosen = node_parameters(dict(required, instance_topic="/cam/instances"))
    assert chosen["instance_topics"] == ["/cam/instances"]


# ------------------------------------------------------------------------------------------------
# the launch files are installed with svs_gan_ros and find their files through its share/ folder

def installed_files() -> dict[str, set[Path]]:
    """share/svs_gan_ros/<folder> -> the package files setup.py's data_files install there (setup.py
    run with setuptools.setup replaced, in the package folder as colcon runs it)."""
    import setuptools

    captured = {}
    cwd = os.getcwd()
    real_setup = setuptools.setup
    try:
        os.chdir(NODE_PACKAGE)
        setuptools.setup = lambda **kwargs: captured.update(kwargs)
        exec(compile((NODE_PACKAGE / "setup.py").read_text(), "setup.py", "exec"), {"__name__": "__main__"})
    finally:
        setuptools.setup = real_setup
        os.chdir(cwd)
    out = {}
    for dest, files in captured["data_files"]:
        if dest.startswith("share/svs_gan_ros/"):
            out.setdefault(dest.removeprefix("share/svs_gan_ros/"), set()).update(NODE_PACKAGE / f for f in files)
    return out


def test_setup_py_installs_every_launch_and_config_file():
    installed = installed_files()
    for folder in ("launch", "config"):
        files = {p for p in (NODE_PACKAGE / folder).iterdir() if p.is_file() and p.suffix != ".pyc"}
        assert files, folder
        assert files <= installed.get(folder, set()), f"not installed: {files - installed.get(folder, set())}"


_PACKAGE_ROOTS = {"ament_index_python.packages.get_package_share_directory",
                  "launch_ros.substitutions.FindPackageShare"}
_FILE_SUFFIXES = (".py", ".json", ".yaml", ".yml", ".xml", ".urdf", ".rviz")


def _joined_paths(lf: LaunchFile) -> list[tuple[str | None, list]]:
    """(package whose share/ a path starts from, or None, the remaining parts) of every os.path.join
    and PathJoinSubstitution in the file."""
    out = []
    for node in ast.walk(lf.tree):
        parts = None
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.path.join", "os.path.abspath",
                                                                    "os.path.dirname", "os.path.realpath"):
            parts = node.args
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                lf.names.get(node.func.id) == "launch.substitutions.PathJoinSubstitution":
            assert isinstance(node.args[0], ast.List), f"{lf.path.name}:{node.lineno}: unreadable path"
            parts = node.args[0].elts
        if parts is None:
            continue
        head = parts[0] if parts else None
        package = None
        if isinstance(head, ast.Call) and isinstance(head.func, ast.Name) and \
                lf.names.get(head.func.id) in _PACKAGE_ROOTS and isinstance(head.args[0], ast.Constant):
            package = head.args[0].value
        out.append((package, parts[1:] if package else parts))
    return out


def test_launch_files_refer_to_no_path_outside_a_package(launch_file):
    """Paths start at a package's share/ folder (get_package_share_directory or FindPackageShare);
    svs_gan_ros's own ones name a file setup.py installs. Nothing relative to the launch file or
    the working directory, which point into a checkout."""
    lf = launch_file
    names = {n.id for n in ast.walk(lf.tree) if isinstance(n, ast.Name)}
    assert "__file__" not in names, f"{lf.path.name} locates files relative to itself"
    in_joins = set()
    for package, rest in _joined_paths(lf):
        assert package is not None, f"{lf.path.name}: a path that does not start at a package's share/"
        assert all(isinstance(p, ast.Constant) for p in rest), f"{lf.path.name}: unreadable path parts"
        in_joins |= {id(p) for p in rest}
        if package == "svs_gan_ros":
            target = NODE_PACKAGE.joinpath(*(p.value for p in rest))
            assert target in installed_files().get(str(target.parent.relative_to(NODE_PACKAGE)), set()), \
                f"{lf.path.name} names {target.relative_to(NODE_PACKAGE)}, which svs_gan_ros does not install"
    for node in ast.walk(lf.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_joins:
            value = node.value
            assert not value.endswith(_FILE_SUFFIXES) or " " in value, \
                f"{lf.path.name}:{node.lineno}: file {value!r} outside a package path"
            assert ".." not in Path(value).parts, f"{lf.path.name}:{node.lineno}: {value!r}"
