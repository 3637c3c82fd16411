"""The SVS-GAN networks: warping, occlusion gating, gradients, presets, progressive growing."""
import pytest
import torch

from svsgan_core.models.config import ModelConfig, preset
from svsgan_core.models import (
    FlowOcclusionNet,
    OASISDiscriminator,
    SVSGenerator,
    VideoDiscriminators,
    one_hot,
    warp,
)


def tiny() -> ModelConfig:
    return preset("tiny")


def test_warp_zero_flow_is_identity():
    img = torch.rand(2, 3, 9, 13)
    assert torch.allclose(warp(img, torch.zeros(2, 2, 9, 13)), img, atol=1e-6)


def test_warp_integer_shift_moves_pixels_exactly():
    img = torch.rand(1, 3, 10, 12)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0] = 2.0  # sample 2 px to the right
    flow[:, 1] = -1.0  # and 1 px up
    out = warp(img, flow)
    assert torch.allclose(out[:, :, 1:, :-2], img[:, :, :-1, 2:], atol=1e-6)


def test_warp_gradients_reach_the_flow():
    img = torch.rand(1, 3, 8, 8)
    flow = torch.full((1, 2, 8, 8), 0.3, requires_grad=True)
    warp(img, flow).sum().backward()
    assert flow.grad is not None and flow.grad.abs().sum() > 0


def test_one_hot_ignores_out_of_range_ids():
    lab = torch.tensor([[[0, 2, 255]]])
    oh = one_hot(lab, 3)
    assert oh.shape == (1, 3, 1, 3)
    assert oh[0, :, 0, 0].tolist() == [1, 0, 0] and oh[0, :, 0, 1].tolist() == [0, 0, 1]
    assert oh[0, :, 0, 2].sum() == 0


def test_flow_net_flow_is_in_full_resolution_pixels():
    """The net runs at 1/2 resolution: its flow is upsampled and its vectors scaled by 2."""
    net = FlowOcclusionNet(5, [8, 16], 1, downsample=2)
    with torch.no_grad():
        net.flow_head.bias.copy_(torch.tensor([1.5, -0.5]))  # weight is zero: a constant low-res flow
    a = one_hot(torch.randint(0, 5, (2, 32, 48)), 5)
    flow, occ = net(a, a)
    assert flow.shape == (2, 2, 32, 48) and occ.shape == (2, 1, 32, 48)
    assert torch.allclose(flow[:, 0], torch.full((2, 32, 48), 3.0)) and torch.allclose(flow[:, 1], torch.full((2, 32, 48), -1.0))


@pytest.mark.parametrize("force, should_change", [(float("inf"), False), (float("-inf"), True)])
def test_occlusion_fusion_gates_the_previous_frame(force, should_change):
    """Occlusion logits of +inf (OC = 1: regenerate) shut the previous frame out; -inf (OC = 0) let it in."""
    torch.manual_seed(0)
    g = SVSGenerator(tiny()).eval()
    real_flow_net = g.flow_net.forward

    def forced(prev_seg, seg):
        flow, logits = real_flow_net(prev_seg, seg)
        return flow, torch.full_like(logits, force)

    g.flow_net.forward = forced
    lab = torch.randint(0, 19, (1, 64, 128))
    with torch.no_grad():
        a = g(lab, lab, torch.rand(1, 3, 64, 128) * 2 - 1).image
        b = g(lab, lab, torch.rand(1, 3, 64, 128) * 2 - 1).image
    changed = not torch.allclose(a, b, atol=1e-6)
    assert changed == should_change


def test_first_frame_mode_matches_full_occlusion_and_needs_no_previous_frame():
    torch.manual_seed(0)
    g = SVSGenerator(tiny()).eval()
    lab = torch.randint(0, 19, (1, 64, 128))
    real_flow_net = g.flow_net.forward
    g.flow_net.forward = lambda prev_seg, seg: (real_flow_net(prev_seg, seg)[0],
                                                torch.full((1, 1, 64, 128), float("inf")))  # OC = 1
    any_prev = torch.rand(1, 3, 64, 128) * 2 - 1
    with torch.no_grad():
        out = g(lab)
        occluded = g(lab, torch.randint(0, 19, (1, 64, 128)), any_prev).image
        flagged = g.step(any_prev, lab, lab, torch.ones(1))  # the exported graph's first-frame flag
    assert out.flow is None and out.warped is None
    assert out.image.shape == (1, 3, 64, 128)
    assert torch.allclose(out.image, occluded, atol=1e-5) and torch.allclose(out.image, flagged, atol=1e-5)


def _assert_all_grads(module, name):
    missing = [n for n, p in module.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"{name}: parameters without gradient: {missing[:5]}"


def test_a_loss_reaches_every_parameter_of_G_DI_and_DV():
    torch.manual_seed(0)
    cfg = tiny()
    g, di, dv = SVSGenerator(cfg), OASISDiscriminator(cfg.num_classes, cfg.d_channels), VideoDiscriminators(cfg)
    t, h, w = 7, cfg.height, cfg.width
    labels = torch.randint(0, 19, (1, t, h, w))
    frames, prev = [], None
    for i in range(t):
        out = g(labels[:, i], labels[:, i - 1] if i else None, prev)
        frames.append(out.image)
        prev = out.image
    video = torch.stack(frames, 1)
    loss = 0
    for img in frames:
        logits, feats = di(img)
        loss = loss + logits.mean() + sum(f.mean() for f in feats)
    for logits, feats in dv(video, labels):
        loss = loss + logits.mean() + sum(f.mean() for f in feats)
    loss = loss + out.flow.abs().mean() + out.occlusion.mean()
    loss.backward()
    for m, name in ((g, "G"), (di, "D_I"), (dv, "D_V")):
        _assert_all_grads(m, name)
    assert len(dv(video, labels)) == 2  # both temporal scales fit a 7-frame clip


def test_video_discriminator_scales_sample_consecutive_and_every_third_frame():
    cfg = tiny()
    dv = VideoDiscriminators(cfg)
    frames = torch.arange(7).float().view(1, 7, 1, 1, 1).expand(1, 7, 3, 4, 4)
    labels = torch.zeros(1, 7, 4, 4, dtype=torch.long)
    f0, _ = dv.clips(0, frames, labels)
    f1, _ = dv.clips(1, frames, labels)
    assert f0[:, :, 0, 0, 0].tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]
    assert f1[:, :, 0, 0, 0].tolist() == [[0, 3, 6]]


def test_oasis_discriminator_segments_into_n_plus_one_classes_at_full_resolution():
    d = OASISDiscriminator(19, [16, 32, 32])
    logits, _ = d(torch.rand(2, 3, 32, 64))
    assert logits.shape == (2, 20, 32, 64)


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_paper_preset_parameter_counts():
    g1024 = _count(SVSGenerator(preset("1024x512")))
    assert abs(g1024 - 105.9e6) <= 0.10 * 105.9e6, g1024
    g512 = _count(SVSGenerator(preset("512x256")))
    assert g512 < g1024  # the grown model adds one level on top of the base model
    assert abs(g512 - 105.9e6) <= 0.10 * 105.9e6  # Table 3 reports 105.9M for the 512x256 ablation too


def test_grow_doubles_resolution_and_keeps_trained_weights():
    torch.manual_seed(0)
    g = SVSGenerator(tiny())
    before = {k: v.clone() for k, v in g.state_dict().items()}
    g.grow()
    after = g.state_dict()
    # the old finest level moved to index 1 in each pyramid and in the decoder
    renames = {}
    for k in before:
        new = k
        for prefix in ("image_encoder.levels.", "semantic_encoder.levels.", "decoder."):
            if k.startswith(prefix):
                idx, rest = k[len(prefix):].split(".", 1)
                new = f"{prefix}{int(idx) + 1}.{rest}"
        renames[k] = new
    for old, new in renames.items():
        assert torch.equal(before[old], after[new]), old
    assert g.cfg.height == 128 and g.cfg.width == 256
    with torch.no_grad():
        assert g(torch.randint(0, 19, (1, 128, 256))).image.shape == (1, 3, 128, 256)
