"""The named model presets: `small` sits between `tiny` and the paper's base model and runs."""
import pytest
import torch

from svsgan_core.models import SVSGenerator
from svsgan_core.models.config import PRESETS, preset

pytestmark = pytest.mark.usefixtures("one_thread")


def _params(name: str) -> int:
    return sum(p.numel() for p in SVSGenerator(preset(name)).parameters())


def test_small_is_between_tiny_and_the_paper_model():
    assert {"tiny", "small", "512x256", "1024x512"} <= set(PRESETS)
    tiny, small, paper = _params("tiny"), _params("small"), _params("512x256")
    assert 3 * tiny < small < paper / 5
    assert preset("small").levels == preset("tiny").levels + 1


@torch.no_grad()
def test_small_generates_both_modes_at_its_resolution():
    torch.manual_seed(0)
    cfg = preset("small")
    g = SVSGenerator(cfg).eval()
    labels = torch.randint(0, cfg.num_classes, (1, cfg.height, cfg.width))
    first = g(labels).image
    assert first.shape == (1, 3, cfg.height, cfg.width)
    out = g(labels, labels, first)
    assert out.image.shape == first.shape and torch.isfinite(out.image).all()
