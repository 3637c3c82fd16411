"""Feature matching L_FM (appendix A, equation (5)) over the intermediate features of D_I and D_V.

alpha_l = 1 / L: each discriminator contributes the mean over its L layers of the mean absolute
difference. Equation (7) weighs L_FM(D_I) + L_FM(D_V) with one lambda_FM: one term per discriminator
family, so the temporal scales of D_V are averaged (summing them gave the video term lambda_FM per
scale, 20 against 10 for D_I with two scales). Real features are targets and carry no gradient.
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
    """Mean over the temporal scales of D_V (outputs of VideoDiscriminators) of `feature_matching`."""
    if len(fake) != len(real):
        raise ValueError(f"temporal scales differ in number ({len(fake)} vs {len(real)})")
    if not fake:
        return torch.zeros(())
    return sum(feature_matching(ff, rf) for (_, ff), (_, rf) in zip(fake, real)) / len(fake)
