"""The generator node against hostile or heavy input, as real processes over real DDS (issue 15).

Reuses the process harness of tests/test_ros_node.py (an isolated graph per test, the node by its
console entry point, tests/ros_driver.py as publisher and recorder).
"""
from __future__ import annotations

import json
import sys
import time

from test_ros_node import (  # noqa: F401  (ros and checkpoint are fixtures)
    DRIVER, T0, _event, assert_clean_exit, base_params, checkpoint, ids_msg, needs_ros, ros, start,
)

import pytest

pytestmark = pytest.mark.ros

# ros_driver.py with every history 5,000 deep: a reliable publisher that can hold a whole burst
# until the node acknowledges it, as `ros2 bag play` or a simulator with a deep queue would.
_DEEP_DRIVER = (
    'import sys, rclpy.qos; sys.path.insert(0, sys.argv.pop(1)); import ros_driver; '
    '_qos = rclpy.qos.QoSProfile; '
    'ros_driver.QoSProfile = lambda **kw: _qos(**{**kw, "depth": 5000}); ros_driver.main()'
)


STALL_S = 180.0  # a hang, not slowness: a status comes every 0.5 s and a frame in far less than this


def follow(proc, until, what):
    """Feed each new event of `proc` to `until` once, and {} at each idle half second, until it
    returns true (`until` fails on a hang). Proc.wait_for rescans every line at each wake, which
    thousands of events make quadratic."""
    seen = 0
    with proc.cond:
        while True:
            while seen < len(proc.lines):
                item = _event(proc.lines[seen])
                seen += 1
                if isinstance(item, dict) and until(item):
                    return
            if proc.done:
                raise AssertionError(f'{proc.name} exited before {what}; output:\n'
                                     + '\n'.join(line[:200] for line in proc.lines[-20:]))
            proc.cond.wait(0.5)
            if until({}):  # no event: `until` still sees the time pass (a node that died sends nothing)
                return


@needs_ros
def test_lossless_burst_from_a_reliable_publisher_loses_nothing(ros, checkpoint, monkeypatch):
    """2,000 frames published as fast as the driver can: every one is received and published, in
    order, each stamp once, nothing counted as dropped or lost. A keep_last input history (the old
    depth 100) overwrote most of them, silently."""
    n = 2000
    params = base_params(checkpoint, input_topics=['/burst/image'], output_topics=['/burst/gen'],
                         max_pending=n, status_period_s=0.5)
    monkeypatch.setattr(ros, 'driver', lambda publishers, subscriptions: ros.spawn(
        [sys.executable, '-c', _DEEP_DRIVER, str(DRIVER.parent),
         json.dumps({'publishers': publishers, 'subscriptions': subscriptions})], 'driver'))
    node, driver = start(ros, params, [['/burst/image', 'Image', 'reliable']],
                         [['/burst/gen', 'Image'], ['/svs_gan_generator/status', 'String']])
    stamps = [T0 + k * 10_000_000 for k in range(n)]  # 100 Hz on the stamps: one sequence
    msgs = [ids_msg(k % 8, s) for k, s in enumerate(stamps)]
    driver.send(op='stream', topic='/burst/image', msgs=msgs, rate_hz=1e9)
    driver.wait_for(lambda e: isinstance(e, dict) and e.get('event') == 'streamed', 300, 'end of the burst')
    # Every frame is received and comes out; the model works through the queue at its own pace, so
    # there is no time limit, only a hang detector: nothing new (no output, no count moving in the
    # half-second status) for STALL_S fails, with the counts at that point.
    got, last, moved = [], {}, [time.monotonic()]

    def everything_out(e):
        before = (len(got), last.get('received'), last.get('published'))
        if e.get('event') == 'msg' and e.get('topic') == '/burst/gen':
            got.append(e['stamp_ns'])
        elif e.get('topic') == '/svs_gan_generator/status':
            last.update(json.loads(e['data'])['cameras'][0])
        if (len(got), last.get('received'), last.get('published')) != before:
            moved[0] = time.monotonic()
        assert time.monotonic() - moved[0] < STALL_S, f'stalled with {len(got)} of {n} frames out: {last}'
        return len(got) >= n and last.get('published') == n

    follow(driver, everything_out, what='every frame of the burst published')
    assert (last['received'], last['published'], last['pending']) == (n, n, 0), last
    assert (last['dropped_overflow'], last['dropped_bad'], last['dropped_live'], last['lost']) == (0, 0, 0, 0), last
    assert got == stamps  # every stamp once, in order
    assert 'keep_all' in node.output()  # the ready line names the input history
    assert_clean_exit(node)


@needs_ros
def test_every_entry_point_prints_help_instead_of_starting():
    import shutil
    import subprocess
    from test_ros_node import node_executable

    for exe in (node_executable(), shutil.which('convert_bag')):
        assert exe, 'the svs_gan_ros console scripts are not installed'
        out = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and 'usage:' in out.stdout and 'Traceback' not in out.stderr, out
    out = subprocess.run([node_executable(), '--help'], capture_output=True, text=True, timeout=120).stdout
    assert 'max_pending_mb' in out and 'max_megapixels' in out and 'ready:' not in out
