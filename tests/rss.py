"""Resident-set samples of this process and their slope: a leak is growth per frame, not a level.

The level after N frames depends on the allocator, the thread pools and what ran before in the same
pytest process; the slope over the second half of one stream does not (a leak of one frame's state
per step shows as that many bytes per frame, allocator steps average out over hundreds of frames).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def second_half_slope_kb(samples: list[int]) -> float:
    """Least-squares growth per sample (KB) over the second half: the first half is warm-up."""
    y = np.asarray(samples[len(samples) // 2:], float)
    return float(np.polyfit(np.arange(len(y)), y, 1)[0])
