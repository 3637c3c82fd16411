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


def _with(**kw):
    import dataclasses

    return dataclasses.replace(_tiny(), **kw)


@torch.no_grad()
def test_carry_refine_starts_as_the_exact_composite():
    """The refinement residual is zero at the start, so OC = 0 with zero flow still gives the previous frame."""
    torch.manual_seed(0)
    g = SVSGenerator(_with(carry_refine=True)).eval()
    real_flow_net = g.flow_net.forward
    g.flow_net.forward = lambda a, b: (torch.zeros_like(real_flow_net(a, b)[0]),
                                       torch.full_like(real_flow_net(a, b)[1], float("-inf")))
    labels = torch.randint(0, 19, (1, 32, 64))
    prev = torch.rand(1, 3, 32, 64) * 1.8 - 0.9
    torch.testing.assert_close(g(labels, labels, prev).image, prev, atol=1e-4, rtol=0)
    torch.nn.init.normal_(g.refine[1].weight, std=0.1)  # once trained, it corrects the carried frame
    assert (g(labels, labels, prev).image - prev).abs().max() > 1e-2


@torch.no_grad()
def test_class_colour_paints_each_class_with_a_crisp_edge():
    """With the decoder's own output silenced, the frame is the per-class colour: every label edge is a
    one-pixel step in the output, whatever the decoder's blur."""
    torch.manual_seed(0)
    g = SVSGenerator(_with(class_colour=True)).eval()
    torch.nn.init.zeros_(g.to_rgb[1].weight)
    torch.nn.init.zeros_(g.to_rgb[1].bias)
    colours = torch.linspace(-1.5, 1.5, 19 * 3).view(19, 3)
    g.class_colour.weight.copy_(colours.t()[:, :, None, None])
    labels = torch.zeros(1, 32, 64, dtype=torch.long)
    labels[:, :, 31:] = 7
    out = g(labels).image
    torch.testing.assert_close(out[0, :, 0, 0], torch.tanh(colours[0]), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[0, :, 0, 63], torch.tanh(colours[7]), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[0, :, :, 30], out[0, :, :, 0], rtol=0, atol=1e-6)  # no bleeding across
    torch.testing.assert_close(out[0, :, :, 31], out[0, :, :, 63], rtol=0, atol=1e-6)


@torch.no_grad()
def test_class_palette_starts_each_class_at_its_mean_colour_in_the_previous_frame():
    """With the decoder's own output silenced: a class the previous frame shows takes its mean colour
    there; a class it lacks, or shows on too few pixels to trust, and every class of a starting camera keep
    the learnt colour. step() (the exported graph) does the same per camera of a mixed batch."""
    from svsgan_core.errors import InputError
    from svsgan_core.models.generator import PALETTE_MIN_PIXELS

    with pytest.raises(InputError, match="class_colour"):
        _with(class_palette=True)
    torch.manual_seed(0)
    g = SVSGenerator(_with(class_colour=True, class_palette=True, occlusion_composite=False)).eval()
    learnt = torch.linspace(-1.5, 1.5, 19 * 3).view(19, 3)
    g.class_colour.weight.copy_(learnt.t()[:, :, None, None])
    labels = torch.full((1, 32, 64), 3, dtype=torch.long)
    labels[:, :, 40:] = 7
    labels[:, :2, :2] = 9
    prev_labels = torch.full((1, 32, 64), 3, dtype=torch.long)
    prev_labels[:, 0, : PALETTE_MIN_PIXELS - 1] = 9  # one pixel short of a trusted mean
    prev = torch.rand(1, 3, 32, 64) * 1.8 - 0.9
    out = g(labels, prev_labels, prev).image
    torch.testing.assert_close(out[0, :, 10, 5], prev[0][:, prev_labels[0] == 3].mean(1), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[0, :, 10, 50], torch.tanh(learnt[7]), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tanh(learnt[9]), rtol=0, atol=1e-6)
    first = g(labels).image
    torch.testing.assert_close(first[0, :, 10, 5], torch.tanh(learnt[3]), rtol=0, atol=1e-6)
    both = g.step(prev.repeat(2, 1, 1, 1), prev_labels.repeat(2, 1, 1), labels.repeat(2, 1, 1), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(both[0], out[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(both[1], first[0], rtol=0, atol=1e-5)


@torch.no_grad()
def test_a_local_class_palette_keeps_each_side_of_the_street_its_own_colour():
    """palette_cells > 0: a class painted two colours in I_{i-1} (two facades) starts each side of S_i
    from its own side's colour; where the window holds none of a class, the whole frame's mean."""
    torch.manual_seed(0)
    g = SVSGenerator(_with(class_colour=True, class_palette=True, palette_cells=16, occlusion_composite=False,
                           height=64, width=128)).eval()
    labels = torch.zeros(1, 64, 128, dtype=torch.long)
    labels[:, 28:36, :8] = 5  # class 5 at the far left now ...
    prev_labels = torch.zeros(1, 64, 128, dtype=torch.long)
    prev_labels[:, 28:36, 120:] = 5  # ... only at the far right before: no local evidence, its frame mean
    prev = torch.zeros(1, 3, 64, 128)
    prev[:, 0, :, :64], prev[:, 2, :, 64:] = 0.8, -0.6
    prev[:, 1][prev_labels == 5] = 0.5
    out = g(labels, prev_labels, prev).image[0]
    torch.testing.assert_close(out[:, 10, 2], torch.tensor([0.8, 0.0, 0.0]), rtol=0, atol=1e-4)
    torch.testing.assert_close(out[:, 10, 125], torch.tensor([0.0, 0.0, -0.6]), rtol=0, atol=1e-4)
    torch.testing.assert_close(out[:, 30, 3], torch.tensor([0.0, 0.5, -0.6]), rtol=0, atol=1e-4)
    g.cfg.palette_cells = 0  # the whole frame's means: both sides the same colour
    flat = g(labels, prev_labels, prev).image[0]
    torch.testing.assert_close(flat[:, 10, 2], flat[:, 10, 125], rtol=0, atol=1e-6)


@torch.no_grad()
def test_detail_from_decoder_keeps_the_carried_colours_and_the_generated_detail():
    """OC = 0, zero flow: the output's low frequencies are the previous frame's, its high frequencies the
    decoder's, so a blurred previous frame comes out with the decoder's detail instead of staying blurred."""
    from svsgan_core.models.generator import binomial_blur

    torch.manual_seed(0)
    g = SVSGenerator(_with(detail_from_decoder=True, class_colour=True)).eval()
    real_flow_net = g.flow_net.forward
    g.flow_net.forward = lambda a, b: (torch.zeros_like(real_flow_net(a, b)[0]),
                                       torch.full_like(real_flow_net(a, b)[1], float("-inf")))
    g.class_colour.weight.normal_(std=1.0)
    labels = torch.randint(0, 19, (1, 32, 64))
    prev = binomial_blur(binomial_blur(torch.rand(1, 3, 32, 64) * 2 - 1))
    out = g(labels, labels, prev).image
    g.cfg.occlusion_composite = False  # the same forward without the composite: the decoder's own frame
    generated = g(labels, labels, prev).image
    torch.testing.assert_close(out, binomial_blur(prev) + generated - binomial_blur(generated), atol=1e-5, rtol=0)

    def detail(x):
        return float((x - binomial_blur(x)).pow(2).mean())

    assert detail(out) > 2 * detail(prev)  # the blurred carried frame comes out with the decoder's detail


def test_bicubic_warp_keeps_more_detail_than_bilinear_over_a_chain_of_sub_pixel_shifts():
    from svsgan_core.models.flow import warp

    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 64) * 2 - 1
    flow = torch.zeros(1, 2, 32, 64)
    flow[:, 0] = 0.5  # half a pixel to the left each frame, the worst case for interpolation
    detail = {}
    for mode in ("bilinear", "bicubic"):
        x = image
        for _ in range(4):
            x = warp(x, flow, mode)
        detail[mode] = float((x[..., 8:-8] - binomial_blur_ref(x)[..., 8:-8]).pow(2).mean())
    assert detail["bicubic"] > 2 * detail["bilinear"]


def binomial_blur_ref(x):
    from svsgan_core.models.generator import binomial_blur

    return binomial_blur(x)


@torch.no_grad()
def test_a_checkpoint_from_before_the_composite_loads_with_the_code_it_was_trained_with(tmp_path):
    """A config.yaml without occlusion_composite was written before the knobs existed, when the skips were
    normalised with the decoder features and the output had no composite: it loads as that, not with
    today's defaults (which would composite the warped frame over its output)."""
    import yaml

    from svsgan_core.runtime.checkpoint import load_generator, save_checkpoint

    torch.manual_seed(0)
    old = SVSGenerator(_with(normalise_skips=True, occlusion_composite=False)).eval()
    save_checkpoint(tmp_path / "old", old)
    cfg_file = tmp_path / "old" / "config.yaml"
    data = yaml.safe_load(cfg_file.read_text())
    for key in ("normalise_skips", "occlusion_composite", "carry_refine", "detail_from_decoder", "warp_mode",
                "class_colour", "instance_edges"):  # none of these existed then
        del data["model"][key]
    cfg_file.write_text(yaml.safe_dump(data))
    loaded = load_generator(tmp_path / "old").eval()
    assert (loaded.cfg.normalise_skips, loaded.cfg.occlusion_composite) == (True, False)
    labels = torch.randint(0, 19, (1, 32, 64))
    prev_image = torch.rand(1, 3, 32, 64) * 2 - 1
    args = (labels, labels.roll(2, 2), prev_image)  # continuing mode: the composite would show here
    torch.testing.assert_close(loaded(*args).image, old(*args).image, rtol=0, atol=1e-6)
    # a config that names the keys keeps its own values
    save_checkpoint(tmp_path / "new", SVSGenerator(_tiny()))
    assert load_generator(tmp_path / "new").cfg.occlusion_composite is True
