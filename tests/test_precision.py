"""Warping stays sub-pixel accurate under autocast: grid and flow in fp32 (every paper config trains in bf16)."""
import pytest
import torch

from svsgan_core.models.flow import FlowOcclusionNet, warp


@pytest.mark.parametrize("width", [1024, 2048])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sub_pixel_shift_is_exact_under_cpu_autocast(width, dtype):
    """A ramp image (value = x) warped by a 0.3 px flow as the autocast flow head returns it (half
    precision) must read x + 0.3; a half-precision grid read up to 3.3 px (bf16) off at width 1024."""
    h = 4
    ramp = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width).expand(1, 1, h, width).contiguous()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        flow = torch.zeros(1, 2, h, width, dtype=dtype)
        flow[:, 0] = 0.3
        out = warp(ramp, flow)
    assert out.dtype == torch.float32
    expected = ramp + flow[:, :1].float()
    error = (out - expected)[..., : width - 1].abs().max().item()  # the last column clamps at the border
    assert error < 0.05, error


def test_warp_returns_the_image_dtype_and_matches_fp32():
    image = torch.rand(1, 3, 8, 16)
    flow = torch.randn(1, 2, 8, 16)
    out = warp(image.bfloat16(), flow)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), warp(image, flow), atol=2e-2, rtol=0)


@pytest.mark.parametrize("downsample", [1, 2])
def test_flow_head_runs_in_fp32_under_autocast(downsample):
    torch.manual_seed(0)
    net = FlowOcclusionNet(5, [8, 8], 1, downsample=downsample).eval()
    torch.nn.init.normal_(net.flow_head.weight, std=0.5)
    torch.nn.init.constant_(net.flow_head.bias, 40.0)  # tens of pixels, where bf16 steps are 0.25 px
    a, b = (torch.nn.functional.one_hot(torch.randint(0, 5, (1, 16, 32)), 5).permute(0, 3, 1, 2).float()
            for _ in range(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        flow, occlusion_logits = net(a, b)
    assert flow.dtype == torch.float32 and flow.shape == (1, 2, 16, 32)
    assert occlusion_logits.dtype == torch.float32 and occlusion_logits.shape == (1, 1, 16, 32)
    assert flow.abs().mean() > 30
    # the features before the head are bf16 under autocast; only the head's own rounding is gone
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = net.up(net.res(net.down(net.stem(torch.cat((a, b), 1) if downsample == 1 else
                                                    torch.nn.functional.avg_pool2d(torch.cat((a, b), 1), downsample)))))
    reference = torch.nn.functional.conv2d(features.float(), net.flow_head.weight, net.flow_head.bias, padding=1)
    if downsample > 1:
        reference = torch.nn.functional.interpolate(reference, scale_factor=downsample, mode="bilinear",
                                                    align_corners=False) * downsample
    torch.testing.assert_close(flow, reference, atol=1e-4, rtol=1e-5)
