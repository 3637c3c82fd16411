from types import SimpleNamespace

import pytest

from svsgan_core.errors import InputError
from svsgan_core.io.timeline import SequenceTimeline, stamp_to_ns

S = 1_000_000_000


def test_reasons_in_order():
    t = SequenceTimeline(reset_gap_s=1.0)
    assert t.observe(10 * S) == "first"
    assert t.observe(10 * S + S // 10) is None
    assert t.observe(11 * S + S // 10) is None  # exactly the gap is still continuous
    assert t.observe(12 * S + S // 10 + 1) == "gap"
    assert t.observe(5 * S) == "backward"
    assert t.observe(5 * S + 1) is None


def test_equal_stamp_is_duplicate_not_new_sequence():
    t = SequenceTimeline()
    t.observe(S)
    assert t.observe(S) is None and t.is_duplicate
    assert t.observe(S + 1) is None and not t.is_duplicate


def test_reset_and_custom_gap():
    t = SequenceTimeline(reset_gap_s=0.05)
    t.observe(0)
    assert t.observe(S // 10) == "gap"
    t.reset()
    assert t.observe(S // 10) == "first"
    with pytest.raises(InputError):
        SequenceTimeline(reset_gap_s=0)


def test_stamp_to_ns_time_like_objects():
    assert stamp_to_ns(SimpleNamespace(sec=3, nanosec=5)) == 3 * S + 5
    assert stamp_to_ns(7) == 7
    with pytest.raises(InputError):
        stamp_to_ns(SimpleNamespace(sec=1, nanosec=S))
    with pytest.raises(InputError):
        stamp_to_ns(1.5)


def test_stamp_to_ns_rclpy_and_rosbags_messages():
    from rosbags.typesys.stores.ros2_jazzy import builtin_interfaces__msg__Time as BagTime

    t = SequenceTimeline()
    assert t.observe(BagTime(sec=2, nanosec=10)) == "first"
    try:
        from builtin_interfaces.msg import Time
    except ImportError:
        pytest.skip("builtin_interfaces not installed")
    assert stamp_to_ns(Time(sec=2, nanosec=10)) == 2 * S + 10
    assert t.observe(Time(sec=1, nanosec=0)) == "backward"
