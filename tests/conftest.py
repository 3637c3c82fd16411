"""Fixtures shared by the test files."""
import os

import pytest
import torch

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
