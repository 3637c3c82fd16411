"""When a stream of stamped frames starts a new sequence: the rule the ROS node and bag conversion share.

The synthesizer is autoregressive, so feeding it a frame that does not follow the previous one
(a bag that loops, a CARLA world reload, a long pause) would warp the old scene into the new one.
A stamp earlier than the previous one, or later by more than ``reset_gap_s``, starts a new sequence.

A stamp equal to the previous one is a duplicate frame (a republished or re-read message), not a
new sequence: ``observe`` returns None and ``is_duplicate`` tells the caller, which may skip it.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError

NEW_SEQUENCE_REASONS = ("first", "backward", "gap")
MAX_RESET_GAP_S = 1e6  # 11.6 days: the node's reset_gap_s range ends here too; more is no longer a gap


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time-like (``sec``, ``nanosec``; rclpy, rosbags) or an int of ns -> int ns."""
    if isinstance(stamp, bool):
        raise InputError(f"not a time stamp: {stamp!r}")
    if isinstance(stamp, int):
        return stamp
    try:
        sec, nanosec = stamp.sec, stamp.nanosec
    except AttributeError:
        raise InputError(
            f"not a time stamp: {type(stamp).__name__} has no sec/nanosec (expected builtin_interfaces/Time)"
        ) from None
    sec, nanosec = int(sec), int(nanosec)
    if not 0 <= nanosec < 1_000_000_000:
        raise InputError(f"time stamp nanosec out of range 0..999999999: {nanosec}")
    return sec * 1_000_000_000 + nanosec


class SequenceTimeline:
    """Tracks frame stamps and says when a new sequence begins (see module docstring)."""

    def __init__(self, reset_gap_s: float = 1.0):
        if not 0 < reset_gap_s <= MAX_RESET_GAP_S:  # also refuses nan; 1e300 s would overflow the ns below
            raise InputError(f"the reset gap must be more than 0 and at most {MAX_RESET_GAP_S:g} seconds, "
                             f"got {reset_gap_s}")
        self.reset_gap_ns = int(round(reset_gap_s * 1e9))
        self.last_ns: int | None = None
        self.is_duplicate = False

    def observe(self, stamp: Any) -> str | None:
        """Record a frame's stamp; return "first", "backward" or "gap" if it starts a new sequence, else None."""
        ns = stamp_to_ns(stamp)
        last, self.last_ns = self.last_ns, ns
        self.is_duplicate = last is not None and ns == last
        if last is None:
            return "first"
        if ns < last:
            return "backward"
        if ns - last > self.reset_gap_ns:
            return "gap"
        return None

    def reset(self) -> None:
        """Forget the previous stamp, so the next frame starts a sequence ("first")."""
        self.last_ns = None
        self.is_duplicate = False
