"""Fixtures shared by the test files."""
import os

import pytest
import torch

from svsgan_core.runtime.backend import set_threads

# In-process tests run as the commands and the node do: one intra-op thread (svsgan_core.DEFAULT_THREADS).
# Two threads on two busy cores made one step 60x slower; the suite then took 48 minutes instead of 20.
set_threads()

# Ray (tests/test_ray_convert.py) on loopback only: without this a local Ray instance names the
# machine's outward address and its processes talk through it. Read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test, restored afterwards: on a 2-core machine shared with
    other jobs one thread was several times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
