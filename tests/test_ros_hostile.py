"""The generator node against hostile parameters, command lines and an early Ctrl-C (issue 26).

Real processes (the node's console script), as tests/test_ros_node.py starts them. Every bad
parameter or argument stops the node with one `[FATAL]` line naming it and what is allowed, exit
status 1, no traceback; Ctrl-C while the node still imports leaves quietly.
"""
from __future__ import annotations

import json
import signal

import pytest
import yaml
from test_ros_node import base_params, checkpoint, needs_ros, node_executable, ros  # noqa: F401 (fixtures)

pytestmark = pytest.mark.ros


def fatal_line(proc, *parts) -> str:
    code = proc.popen.wait(120)
    out = proc.output()
    lines = out.strip().splitlines()
    assert code == 1 and 'Traceback' not in out and len(lines) == 1, out
    assert lines[0].startswith('[FATAL]') and '[svs_gan_generator]: cannot start: ' in lines[0], out
    for part in parts:
        assert part in lines[0], (part, out)
    return lines[0]


@needs_ros
def test_bad_parameters_and_command_lines_are_one_fatal_line(ros, checkpoint, tmp_path):
    cases = [  # (parameters over base_params, what the line must say)
        ({'input_topics': []}, 'parameter input_topics is empty: name one segmentation image topic per camera'),
        ({'input_topics': ['9bad']}, "parameter input_topics: '9bad' is not a valid ROS topic name "
                                     '(topic name token must not start with a number)'),
        ({'output_topics': ['/gen out']}, "parameter output_topics: '/gen out' is not a valid ROS topic name"),
        ({'status_topic': '/a//b'}, "parameter status_topic: '/a//b' is not a valid ROS topic name"),
        ({'label_encoding': 'carla_palette', 'label_space': 'bogus'},
         "parameter label_space: 'bogus' is not a label space; valid names: cityscapes"),
        ({'device': 'mps'}, "device 'mps' is not available; this PyTorch can use: cpu"),
    ]
    for over, part in cases:
        fatal_line(ros.node(base_params(checkpoint, **over)), part)

    (tmp_path / 'broken.yaml').write_text('/**:\n  ros__parameters:\n    checkpoint: [\n')
    (tmp_path / 'binary.yaml').write_bytes(bytes(range(256)))
    argv_cases = [
        (['--params-file', str(tmp_path / 'missing.yaml')], f'--params-file {tmp_path / "missing.yaml"}: '
                                                             'No such file or directory'),
        (['--params-file', str(tmp_path / 'broken.yaml')], 'broken.yaml: not a YAML parameters file'),
        (['--params-file', str(tmp_path / 'binary.yaml')], 'binary.yaml: not a YAML parameters file'),
        (['-p', 'x'], '-p x: not a parameter assignment; write -p name:=value'),
        (['-p'], '-p needs an assignment'),
    ]
    for args, part in argv_cases:
        fatal_line(ros.spawn([node_executable(), '--ros-args', *args], 'generator_node'), part)


# A sitecustomize that holds `import torch` (which the node's first imports reach) until the test
# writes a line to stdin, after saying so: the test's Ctrl-C then lands inside that import.
_HOLD_TORCH = '''
import json, sys

class HoldTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            sys.stdout.write(json.dumps({"event": "importing torch"}) + "\\n")
            sys.stdout.flush()
            sys.stdin.readline()
        return None

sys.meta_path.insert(0, HoldTorch())
'''


@needs_ros
def test_ctrl_c_while_the_node_imports_torch_leaves_quietly(ros, checkpoint, tmp_path):
    hook = tmp_path / 'hook'
    hook.mkdir()
    (hook / 'sitecustomize.py').write_text(_HOLD_TORCH)
    ros.env['PYTHONPATH'] = f"{hook}:{ros.env['PYTHONPATH']}"
    (tmp_path / 'params.yaml').write_text(yaml.safe_dump({'/**': {'ros__parameters': base_params(checkpoint)}}))
    node = ros.spawn([node_executable(), '--ros-args', '--params-file', str(tmp_path / 'params.yaml')], 'node')
    node.wait_for(lambda e: isinstance(e, dict) and e.get('event') == 'importing torch', 120, 'the torch import')
    node.popen.send_signal(signal.SIGINT)  # Ctrl-C, as a user in the first second
    try:
        node.send(op='go')  # the import goes on
    except BrokenPipeError:
        pass  # the signal ended the process already (the failure asserted below)
    code = node.popen.wait(120)
    out = node.output()
    assert code == 0 and 'Traceback' not in out and 'KeyboardInterrupt' not in out, out
    assert out.strip().splitlines() == [json.dumps({'event': 'importing torch'})], out  # no node, no ready line
