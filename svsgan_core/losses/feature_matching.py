"""Feature matching L_FM (appendix A, equation (5)) over the intermediate features of D_I and D_V.

alpha_l = 1 / L: each discriminator contributes the mean over its L layers of the mean absolute
difference, and the discriminators (D_I and each temporal scale of D_V) are summed, as pix2pixHD does
across its discriminators. Real features are targets and carry no gradient.
"""
from __future__ import annotations

import torch


def feature_matching(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """One discriminator: (1/L) sum_l mean |phi_l(x_hat) - phi_l(x)|."""
    if len(fake_feats) != len(real_feats):
        raise ValueError(f"feature lists differ in length ({len(fake_feats)} vs {len(real_feats)})")
    if not fake_feats:
        return torch.zeros(())
    total = sum((f.float() - r.detach().float()).abs().mean() for f, r in zip(fake_feats, real_feats))
    return total / len(fake_feats)


def video_feature_matching(fake: list, real: list) -> torch.Tensor:
    """Sum over the temporal scales of D_V of `feature_matching` (outputs of VideoDiscriminators)."""
    total = torch.zeros(())
    for (_, ff), (_, rf) in zip(fake, real):
        total = total.to(ff[0].device) + feature_matching(ff, rf)
    return total
