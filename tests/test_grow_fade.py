"""Growing with a fade-in (ProGAN) and the occlusion-composited output of the generator."""
import pytest
import torch
import torch.nn.functional as F

from svsgan_core.models.config import preset
from svsgan_core.models import SVSGenerator


def _tiny():
    cfg = preset("tiny")
    cfg.height, cfg.width = 32, 64
    cfg.validate()
    return cfg


def _upsampled(labels: torch.Tensor) -> torch.Tensor:
    return labels.repeat_interleave(2, 1).repeat_interleave(2, 2)


@torch.no_grad()
def test_right_after_grow_the_output_is_the_previous_stage_upsampled():
    torch.manual_seed(0)
    g = SVSGenerator(_tiny()).eval()
    labels = torch.randint(0, 19, (2, 32, 64))
    before = g(labels).image
    g.grow()
    assert g.fade == 0.0
    after = g(_upsampled(labels)).image
    assert after.shape == (2, 3, 64, 128)
    assert (F.avg_pool2d(after, 2) - before).abs().max() < 1e-2
    assert (F.interpolate(before, scale_factor=2, mode="nearest") - after).abs().max() < 1e-5


@torch.no_grad()
def test_the_fade_blends_the_new_block_in_and_ends_on_it():
    torch.manual_seed(0)
    g = SVSGenerator(_tiny()).eval()
    labels = _upsampled(torch.randint(0, 19, (1, 32, 64)))
    g.grow()
    start = g(labels).image
    g.set_fade(1.0)
    new_block = g(labels).image
    assert (new_block - start).abs().max() > 0.05  # the new block computes something else
    g.set_fade(0.25)
    quarter = g(labels).image
    torch.testing.assert_close(quarter, torch.lerp(start, new_block, 0.25), atol=2e-4, rtol=0)
    g.set_fade(7.0)  # clamped
    assert g.fade == 1.0
    # grown without a fade, the new block is in from the start
    torch.manual_seed(0)
    h = SVSGenerator(_tiny()).eval()
    h.grow(fade=False)
    assert h.fade == 1.0


@torch.no_grad()
def test_a_checkpoint_written_mid_fade_loads_with_its_fade(tmp_path):
    from svsgan_core.runtime.checkpoint import load_generator, save_checkpoint

    torch.manual_seed(0)
    g = SVSGenerator(_tiny()).eval()
    g.grow()
    g.set_fade(0.25)
    labels = _upsampled(torch.randint(0, 19, (1, 32, 64)))
    save_checkpoint(tmp_path / "mid", g)
    loaded = load_generator(tmp_path / "mid").eval()
    assert loaded.fade == 0.25
    torch.testing.assert_close(loaded(labels).image, g(labels).image, rtol=0, atol=1e-4)  # fade 1 differs by > 0.05
    g.set_fade(1.0)
    save_checkpoint(tmp_path / "done", g)
    assert load_generator(tmp_path / "done").fade == 1.0


@torch.no_grad()
def test_visible_pixels_carry_the_warped_previous_frame():
    """OC = 0 everywhere and zero flow: the output is the previous frame, whatever the labels say."""
    torch.manual_seed(0)
    g = SVSGenerator(_tiny()).eval()
    real_flow_net = g.flow_net.forward
    g.flow_net.forward = lambda a, b: (torch.zeros_like(real_flow_net(a, b)[0]),
                                       torch.full_like(real_flow_net(a, b)[1], float("-inf")))  # OC = 0
    labels = torch.randint(0, 19, (1, 32, 64))
    prev = torch.rand(1, 3, 32, 64) * 2 - 1
    out = g(labels, labels, prev).image
    torch.testing.assert_close(out, prev, atol=1e-4, rtol=0)


@pytest.mark.parametrize("normalise", [False, True])
def test_skip_colour_reaches_the_decoder_only_without_the_instance_norm(normalise):
    """A uniform colour shift of the warped frame survives into the decoder unless the skips are normalised."""
    torch.manual_seed(0)
    cfg = _tiny()
    cfg.normalise_skips, cfg.occlusion_composite = normalise, False
    g = SVSGenerator(cfg).eval()
    labels = torch.randint(0, 19, (1, 32, 64))
    conds = g.semantic_encoder.conditions(F.one_hot(labels, 19).permute(0, 3, 1, 2).float())
    occ = torch.zeros(1, 1, 32, 64)
    x = torch.randn(1, cfg.dec_channels[0], 32, 64)
    block = g.decoder[0]
    skip = torch.rand(1, cfg.img_channels[0], 32, 64)
    cond = torch.cat((conds[0], occ), 1)
    moved = (block(x, skip + 1.0, cond) - block(x, skip, cond)).abs().max()
    assert (moved > 1e-3) != normalise
