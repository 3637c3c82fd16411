"""Each SVS-GAN loss against a value worked out by hand on a tiny input."""
from __future__ import annotations

import math

import pytest
import torch

from svsgan_core.errors import MissingWeightsError
from svsgan_core.losses import (
    LossConfig,
    SVSGANLoss,
    class_balance_weights,
    class_counts,
    feature_matching,
    flow_l1,
    labelmix_loss,
    labelmix_mask,
    oasis_d_loss,
    oasis_g_loss,
    occlusion_bce,
    occlusion_target,
    video_d_loss,
    video_g_loss,
    warp_l1,
    warp_labels,
)
from svsgan_core.losses.vgg import LAYER_WEIGHTS, VGG19, VGG19_FILE, VGGLoss, find_vgg19_weights
from svsgan_core.models.flow import warp

# 1x2x3 label map, N = 3 classes, 255 = ignore: class 0 x4, class 1 x1, class 2 absent
LABELS = torch.tensor([[[0, 0, 0], [0, 1, 255]]])


def test_class_balance_weights_are_inverse_frequency_normalised_to_mean_one():
    counts = class_counts(LABELS, 3)
    assert counts.tolist() == [4.0, 1.0, 0.0]
    alpha = class_balance_weights(counts)
    # P = 5 labelled pixels, K = 2 classes present: alpha_c = P / (K count_c)
    assert alpha.tolist() == pytest.approx([5 / 8, 5 / 2, 0.0])
    assert float((counts * alpha).sum()) == pytest.approx(5.0)


def _logits(favoured: int, channels: int = 4) -> torch.Tensor:
    """Every pixel: log 3 for `favoured`, 0 elsewhere -> p(favoured) = 1/2, p(other) = 1/6."""
    x = torch.zeros(1, channels, 2, 3)
    x[:, favoured] = math.log(3.0)
    return x


def test_oasis_losses_by_hand():
    alpha = class_balance_weights(class_counts(LABELS, 3))
    logits = _logits(0)
    # four class-0 pixels at -log(1/2), one class-1 pixel at -log(1/6), the ignored pixel weighted 0; mean of 6
    semantic = (4 * (5 / 8) * math.log(2) + (5 / 2) * math.log(6)) / 6
    assert float(oasis_g_loss(logits, LABELS, alpha)) == pytest.approx(semantic, rel=1e-6)
    # fake class N+1 (channel 3) has p = 1/6 on every pixel, the ignored one included
    assert float(oasis_d_loss(logits, logits, LABELS, alpha)) == pytest.approx(semantic + math.log(6), rel=1e-6)
    assert float(oasis_d_loss(logits, _logits(3), LABELS, alpha)) == pytest.approx(semantic + math.log(2), rel=1e-6)


def test_labelmix_mask_follows_classes_and_loss_by_hand():
    labels = torch.tensor([[[0, 0, 1, 1, 255]]])
    g = torch.Generator().manual_seed(0)
    masks = torch.cat([labelmix_mask(labels, 2, g) for _ in range(8)])
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(masks[..., 0] == masks[..., 1]) and torch.all(masks[..., 2] == masks[..., 3])
    assert len({tuple(m.flatten().tolist()) for m in masks}) > 1
    mask = torch.tensor([[[[1.0, 0.0]]]])
    real, fake, mixed = torch.ones(1, 1, 1, 2), torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, 2)
    assert float(labelmix_loss(mixed, real, fake, mask)) == pytest.approx(0.5)  # (1^2 + 0^2) / 2


def test_video_adversarial_losses_by_hand():
    real = [(torch.tensor([0.5, 2.0, -1.0]), [])]
    fake = [(torch.tensor([0.5, -2.0, 1.0]), [])]
    # hinge: mean(relu(1 - r)) = (0.5 + 0 + 2)/3, mean(relu(1 + f)) = (1.5 + 0 + 2)/3, G: -mean(f) = 1/6
    assert float(video_d_loss(real, fake, "hinge")) == pytest.approx(2.5 / 3 + 3.5 / 3)
    assert float(video_g_loss(fake, "hinge")) == pytest.approx(1 / 6)
    # LSGAN: mean((r - 1)^2) = (0.25 + 1 + 4)/3, mean(f^2) = (0.25 + 4 + 1)/3, G: mean((f - 1)^2) = (0.25 + 9 + 0)/3
    assert float(video_d_loss(real, fake, "lsgan")) == pytest.approx(5.25 / 3 * 2)
    assert float(video_g_loss(fake, "lsgan")) == pytest.approx(9.25 / 3)
    # the two temporal scales add up
    assert float(video_g_loss(fake + fake, "hinge")) == pytest.approx(2 / 6)
    with pytest.raises(ValueError):
        video_g_loss(fake, "wgan")


def test_feature_matching_by_hand_and_real_features_are_targets():
    fake = [torch.ones(1, 1, 2, 2, requires_grad=True), torch.full((1, 2, 1, 1), 3.0, requires_grad=True)]
    real = [torch.zeros(1, 1, 2, 2, requires_grad=True), torch.ones(1, 2, 1, 1, requires_grad=True)]
    loss = feature_matching(fake, real)
    assert float(loss.detach()) == pytest.approx((1.0 + 2.0) / 2)  # alpha_l = 1/L
    loss.backward()
    assert fake[0].grad is not None and real[0].grad is None


def test_flow_and_warp_losses_by_hand():
    pred = torch.zeros(1, 2, 1, 2)
    gt = torch.tensor([[[[1.0, 3.0]], [[0.0, -2.0]]]])
    conf = torch.tensor([[[[1.0, 0.5]]]])
    # |diff| x: 1, 3; y: 0, 2; times conf: 1, 1.5, 0, 1 -> mean 3.5 / 4
    assert float(flow_l1(pred, gt, conf)) == pytest.approx(0.875)
    assert float(flow_l1(pred, gt)) == pytest.approx(6 / 4)
    a, b = torch.zeros(1, 3, 1, 2), torch.tensor([[[[1.0, -1.0]]] * 3]).view(1, 3, 1, 2)
    assert float(warp_l1(a, b, conf)) == pytest.approx((1 + 0.5) / 2)


def test_occlusion_target_marks_what_the_flow_cannot_carry():
    torch.manual_seed(0)
    prev = torch.rand(1, 3, 4, 6) * 2 - 1
    flow = torch.zeros(1, 2, 4, 6)
    flow[:, 0] = 1.0  # frame i shows frame i-1 shifted one pixel left: its last column comes from outside
    image = warp(prev, flow)
    image[:, :, 0, 0] += 1.0  # new content: a large photometric error
    conf = torch.ones(1, 1, 4, 6)
    conf[:, :, 1, 1] = 0.0  # hidden in the previous frame, and it changed a little (> threshold / 4)
    image[:, :, 1, 1] += 0.1
    conf[:, :, 3, 3] = 0.0  # an unreliable match that carries fine (smooth road, sky): not occluded
    image[:, :, 3, 3] += 0.02
    image[:, :, 3, 1] += 0.1  # a confident match off by less than the threshold: not occluded
    prev_labels = torch.zeros(1, 4, 6, dtype=torch.long)
    labels = warp_labels(prev_labels, flow)
    labels[:, 2, 2] = 5  # a new object
    target = occlusion_target(prev, image, flow, conf, prev_labels, labels, threshold=0.2)
    expected = torch.zeros(1, 1, 4, 6)
    expected[:, :, 0, 0] = expected[:, :, 1, 1] = expected[:, :, 2, 2] = 1.0
    expected[:, :, :, 5] = 1.0
    assert torch.equal(target, expected)


def test_warp_labels_moves_ids_by_integer_flow():
    labels = torch.arange(6).view(1, 2, 3)
    flow = torch.zeros(1, 2, 2, 3)
    flow[:, 0] = 1.0
    assert warp_labels(labels, flow).tolist() == [[[1, 2, 2], [4, 5, 5]]]


def test_occlusion_bce_by_hand():
    """The loss takes logits: sigmoid(logit(0.9)) = 0.9, sigmoid(logit(0.2)) = 0.2."""
    logits = torch.tensor([[[[math.log(0.9 / 0.1), math.log(0.2 / 0.8)]]]])
    target = torch.tensor([[[[1.0, 0.0]]]])
    assert float(occlusion_bce(logits, target)) == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, rel=1e-5)


def test_a_saturated_occlusion_logit_under_bf16_still_gets_a_gradient():
    """Section 3.1's OC must be able to reopen a pixel it has closed. Under bf16 autocast a sigmoid of a
    logit above ~6.3 rounds to exactly 1.0, where a BCE on the probability has no gradient; the
    occlusion head runs in fp32 and the loss takes its logits, so the gradient is sigmoid(z) - target."""
    from svsgan_core.models.flow import FlowOcclusionNet

    torch.manual_seed(0)
    net = FlowOcclusionNet(5, [8, 8], 1, downsample=2)
    torch.nn.init.zeros_(net.occlusion_head.weight)
    torch.nn.init.constant_(net.occlusion_head.bias, 9.0)  # "occluded", far into bf16 saturation
    a = torch.nn.functional.one_hot(torch.randint(0, 5, (1, 16, 32)), 5).permute(0, 3, 1, 2).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, logits = net(a, a)
        assert torch.sigmoid(torch.tensor(9.0, dtype=torch.bfloat16)) == 1.0  # what a bf16 sigmoid would give
        loss = occlusion_bce(logits, torch.zeros_like(logits))  # the pixel is visible after all
    assert logits.dtype == torch.float32
    loss.backward()
    grad = net.occlusion_head.bias.grad
    # d loss / d bias = mean(sigmoid(9) - 0) ~ 0.99988: the full push back towards "visible"
    assert float(grad) == pytest.approx(torch.sigmoid(torch.tensor(9.0)).item(), rel=1e-3)


class _Scaled(torch.nn.Module):
    """Stand-in backbone whose layer l is l * x, to check the beta_l weighting by hand."""

    def forward(self, x):
        return [l * x for l in range(1, 6)]


def test_vgg_loss_weights_layers_by_hand():
    loss = VGGLoss(_Scaled())
    value = loss(torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2))
    assert LAYER_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    assert float(value) == pytest.approx(1 / 32 + 2 / 16 + 3 / 8 + 4 / 4 + 5 * 1.0)


def test_missing_vgg_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingWeightsError) as err:
        find_vgg19_weights()
    msg = str(err.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / VGG19_FILE) in msg and "loss.vgg=0" in msg
    with pytest.raises(MissingWeightsError, match="nowhere.pth"):
        SVSGANLoss(LossConfig(vgg=10.0, vgg_weights=str(tmp_path / "nowhere.pth")), num_classes=3)
    with pytest.raises(MissingWeightsError, match=VGG19_FILE):
        SVSGANLoss(LossConfig(vgg=10.0), num_classes=3)
    assert SVSGANLoss(LossConfig(vgg=0.0), num_classes=3).vgg is None  # weight 0: no file needed


def test_vgg19_loads_a_torchvision_format_file_from_the_hub_cache(tmp_path, monkeypatch):
    """Keys features.N.weight/bias as torchvision writes them; extra classifier keys are ignored.

    Each tensor is a broadcast view of one number, so the file stays a few KB.
    """
    net = VGG19()
    state = {k: torch.full((1,), float(i) / 100).expand(v.shape) for i, (k, v) in enumerate(net.state_dict().items())}
    state["features.30.weight"] = torch.zeros(1).expand(512, 512, 3, 3)
    state["classifier.0.weight"] = torch.zeros(1).expand(4096, 25088)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(state, hub / VGG19_FILE)
    assert (hub / VGG19_FILE).stat().st_size < 200_000
    loaded = VGG19.from_file()
    assert float(loaded.features[28].bias[0].detach()) == pytest.approx(float(state["features.28.bias"][0]))
    feats = loaded(torch.zeros(1, 3, 16, 16))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2, 1]


def test_total_generator_loss_is_the_weighted_sum_of_equation_7():
    cfg = LossConfig(vgg=0.0, oasis=1.0, video=2.0, flow=3.0, warp=4.0, occlusion=5.0, fm=6.0)
    loss = SVSGANLoss(cfg, num_classes=3)
    names = ["G_oasis", "G_video", "G_flow", "G_warp", "G_occlusion", "G_fm_image", "G_fm_video"]
    assert float(loss.total({k: torch.tensor(1.0) for k in names})) == pytest.approx(1 + 2 + 3 + 4 + 5 + 6 + 6)
    assert float(loss.total({"G_oasis": torch.tensor(2.0), "G_vgg": torch.tensor(1.0)})) == pytest.approx(2.0)


def test_lowpass_l1_compares_only_block_means():
    from svsgan_core.losses.total import lowpass_l1

    real = torch.zeros(1, 3, 4, 4)
    checker = (torch.arange(4).view(4, 1) + torch.arange(4).view(1, 4)) % 2 * 2.0 - 1.0  # +-1, mean 0 per 2x2
    fake = checker.expand(1, 3, 4, 4)
    assert float(lowpass_l1(fake, real, 1)) == pytest.approx(1.0)
    assert float(lowpass_l1(fake, real, 2)) == pytest.approx(0.0)  # the detail is free, the mean is not
    assert float(lowpass_l1(fake + 0.5, real, 2)) == pytest.approx(0.5)


def test_occlusion_target_drops_outline_slivers_and_keeps_regions():
    """With min_size 3, a one-pixel line of label disagreement (an outline a pixel off) is not occluded,
    a 3x3 newly revealed region is, whole."""
    prev = torch.zeros(1, 3, 12, 12)
    flow = torch.zeros(1, 2, 12, 12)
    prev_labels = torch.zeros(1, 12, 12, dtype=torch.long)
    labels = prev_labels.clone()
    labels[:, 2, 1:10] = 4  # a sliver along an outline
    labels[:, 6:9, 6:9] = 7  # a new object
    sliver_and_region = occlusion_target(prev, prev, flow, None, prev_labels, labels, min_size=1)
    assert int(sliver_and_region.sum()) == 9 + 9
    opened = occlusion_target(prev, prev, flow, None, prev_labels, labels, min_size=3)
    expected = torch.zeros(1, 1, 12, 12)
    expected[:, :, 6:9, 6:9] = 1.0
    assert torch.equal(opened, expected)
