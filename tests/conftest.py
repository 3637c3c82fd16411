"""Fixtures shared by the test files."""
import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test, restored afterwards: on a 2-core machine shared with
    other jobs one thread was several times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
