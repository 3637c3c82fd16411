"""The generator node against hostile or heavy input, as real processes over real DDS (issue 15).

Reuses the process harness of tests/test_ros_node.py (an isolated graph per test, the node by its
console entry point, tests/ros_driver.py as publisher and recorder).
"""
from __future__ import annotations

import json
import sys

from test_ros_node import (  # noqa: F401  (ros and checkpoint are fixtures)
    DRIVER, T0, assert_clean_exit, base_params, checkpoint, ids_msg, needs_ros, outputs, ros, start, wait_count,
    wait_status,
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


@needs_ros
def test_lossless_burst_from_a_reliable_publisher_loses_nothing(ros, checkpoint, monkeypatch):
    """2,000 frames published as fast as the driver can: every one comes out, in order, nothing is
    counted as dropped or lost. A keep_last input history (the old depth 100) overwrote most of them."""
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
    # Every frame reaches the lossless queue; the model works through it at its own pace (on a
    # shared CPU that takes minutes, so the test checks the ingest, the order and a first stretch).
    status = wait_status(driver, lambda s: s['cameras'][0]['received'] == n, timeout=300,
                         what='status with the whole burst received')
    cam = status['cameras'][0]
    assert (cam['dropped_overflow'], cam['dropped_bad'], cam['lost']) == (0, 0, 0), cam
    assert cam['published'] + cam['pending'] + 1 >= n  # at most one frame in the model
    wait_count(driver, '/burst/gen', 20, timeout=300)
    got = [e['stamp_ns'] for e in outputs(driver, '/burst/gen')]
    assert got == stamps[:len(got)]  # in order, none skipped
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
