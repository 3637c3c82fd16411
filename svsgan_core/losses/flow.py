"""Flow and warping loss L_Flow (appendix A, equation (6)) and the occlusion supervision.

    L_Flow = lambda_OF * mean(conf * |OF - OF_hat|) + lambda_W * mean(conf * |W(I_{i-1}, OF_hat) - I_i|)

OF is the pseudo-ground-truth backward flow (OpenCV DIS, or the synthetic renderer's exact flow) and
conf its confidence. The warp term warps the *real* previous frame with the predicted flow (as V2V
does): it measures the flow, not the quality of the previous generated frame, which is noise early
in training. Plain means (not normalised by sum(conf)) keep data-parallel runs exact.

The occlusion map OC (1 = regenerate) has no ground truth; its target marks a pixel occluded when
the pseudo-GT flow cannot carry it from I_{i-1}:
- the warped previous label differs from the current label (a new object or disocclusion), or
- the flow fetches it from outside the previous frame, or
- the warped previous real frame differs from the real frame by more than `threshold` (mean
  absolute RGB difference in [-1, 1] units), or by more than threshold / 4 where the flow is not
  confident (conf < 0.5).
Then the mask is opened (eroded, then dilated) by a `min_size` x `min_size` square: an occluded region
narrower than that is a one- or two-pixel sliver along an outline where the flow or the segmentation is
a pixel off, not new content. Left in, those slivers are ~6 % of every real frame at 128x64, the occlusion
net learns a soft ~0.1 everywhere (it cannot tell where the next sliver falls), and the composite then
replaces a tenth of the frame each step, so the reference is gone within a second; opened, ~1.5 % of a
frame is occluded (the image borders the camera drives into, real disocclusions).
Low confidence alone does not mark a pixel: DIS's forward-backward check fails over a third of each
real Cityscapes frame at 128x64 (road, sky, walls: smooth, so any flow fits them), and there the
previous frame carries perfectly well; with the rule above about 8 % of a frame is occluded, with
confidence alone 25-40 %. For the synthetic scenes' exact flow, conf is visibility and a hidden pixel
almost always changes colour by more than threshold / 4.
OC is then trained with binary cross-entropy (on its logits) to that target.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.flow import warp


def flow_l1(pred: torch.Tensor, target: torch.Tensor, conf: torch.Tensor | None = None) -> torch.Tensor:
    """mean(conf * |pred - target|) over Bx2xHxW; conf Bx1xHxW or BxHxW in [0, 1]."""
    diff = (pred.float() - target.float()).abs()
    if conf is not None:
        diff = diff * _as_mask(conf)
    return diff.mean()


def warp_l1(warped: torch.Tensor, target: torch.Tensor, conf: torch.Tensor | None = None) -> torch.Tensor:
    """||WI_{i-1} - I_i||_1 as a mean, optionally masked by the flow confidence."""
    diff = (warped.float() - target.float()).abs()
    if conf is not None:
        diff = diff * _as_mask(conf)
    return diff.mean()


def _as_mask(conf: torch.Tensor) -> torch.Tensor:
    return (conf.unsqueeze(1) if conf.dim() == 3 else conf).float()


def warp_labels(labels: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour backward warp of BxHxW ids: out(x) = labels(round(x + flow(x)))."""
    b, h, w = labels.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    x = (xs + flow[:, 0]).round().clamp(0, w - 1).long()
    y = (ys + flow[:, 1]).round().clamp(0, h - 1).long()
    flat = labels.reshape(b, -1)
    return torch.gather(flat, 1, (y * w + x).reshape(b, -1)).view(b, h, w)


@torch.no_grad()
def occlusion_target(prev_image: torch.Tensor, image: torch.Tensor, flow: torch.Tensor,
                     conf: torch.Tensor | None = None, prev_labels: torch.Tensor | None = None,
                     labels: torch.Tensor | None = None, threshold: float = 0.2, min_size: int = 1) -> torch.Tensor:
    """Bx1xHxW in {0, 1}: 1 where the pseudo-GT flow cannot carry I_{i-1} to I_i (see module doc)."""
    flow = flow.float()
    err = (warp(prev_image.float(), flow) - image.float()).abs().mean(1, keepdim=True)
    occluded = err > threshold
    if conf is not None:
        occluded |= (_as_mask(conf) < 0.5) & (err > threshold / 4)
    if prev_labels is not None and labels is not None:
        occluded |= (warp_labels(prev_labels, flow) != labels).unsqueeze(1)
    h, w = flow.shape[-2:]
    x = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w) + flow[:, 0]
    y = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1) + flow[:, 1]
    occluded |= ((x < -0.5) | (x > w - 0.5) | (y < -0.5) | (y > h - 0.5)).unsqueeze(1)
    occluded = occluded.float()
    if min_size > 1:  # opening: erode (a min over the square), then dilate (a max)
        pad = min_size // 2
        eroded = -F.max_pool2d(F.pad(-occluded, (pad,) * 4, mode="replicate"), min_size, 1)
        occluded = F.max_pool2d(F.pad(eroded, (pad,) * 4, mode="replicate"), min_size, 1)
    return occluded


def occlusion_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the occlusion map, from its logits and in fp32: the gradient sigmoid(z) - t
    never vanishes where the target disagrees, however saturated the logit (a clamped BCE on the
    probability has zero gradient once a half-precision sigmoid rounds to 1)."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())
