"""Video adversarial loss L_adv for the two temporal discriminators D_V (appendix A, equation (3)).

Equation (3) is the classic log loss; like V2V and its successors we default to the hinge form,
which trains patch discriminators more stably, and keep LSGAN and the log ("bce", non-saturating
for G) form selectable. Each D_V returns patch logits; the loss is the mean over patches, windows
and batch for each temporal scale, summed over the scales.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_MODES = ("hinge", "lsgan", "bce")


def _check(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"gan mode must be one of {', '.join(GAN_MODES)}, not {mode!r}")


def d_loss_real(logits: torch.Tensor, mode: str) -> torch.Tensor:
    _check(mode)
    logits = logits.float()
    if mode == "hinge":
        return F.relu(1.0 - logits).mean()
    if mode == "lsgan":
        return ((logits - 1.0) ** 2).mean()
    return F.softplus(-logits).mean()


def d_loss_fake(logits: torch.Tensor, mode: str) -> torch.Tensor:
    _check(mode)
    logits = logits.float()
    if mode == "hinge":
        return F.relu(1.0 + logits).mean()
    if mode == "lsgan":
        return (logits ** 2).mean()
    return F.softplus(logits).mean()


def g_loss_fake(logits: torch.Tensor, mode: str) -> torch.Tensor:
    _check(mode)
    logits = logits.float()
    if mode == "hinge":
        return -logits.mean()
    if mode == "lsgan":
        return ((logits - 1.0) ** 2).mean()
    return F.softplus(-logits).mean()


def video_d_loss(real: list, fake: list, mode: str = "hinge") -> torch.Tensor:
    """D_V side of equation (3); `real`/`fake` are VideoDiscriminators outputs [(logits, feats), ...]."""
    if len(real) != len(fake):
        raise ValueError("real and fake clips must cover the same temporal scales")
    total = torch.zeros(())
    for (lr, _), (lf, _) in zip(real, fake):
        total = total.to(lr.device) + d_loss_real(lr, mode) + d_loss_fake(lf, mode)
    return total


def video_g_loss(fake: list, mode: str = "hinge") -> torch.Tensor:
    """G side of equation (3): generated clips should score as real at every temporal scale."""
    total = torch.zeros(())
    for lf, _ in fake:
        total = total.to(lf.device) + g_loss_fake(lf, mode)
    return total
