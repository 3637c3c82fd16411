"""OASIS adversarial losses for the image discriminator D_I (appendix A, equations (1) and (2)).

D_I is an (N+1)-class segmenter: channels 0..N-1 are the semantic classes, channel N is "fake".
Per-pixel cross-entropy is weighted by alpha_c, the inverse per-pixel frequency of class c in the
batch, normalised so the weights average to 1 over the labelled pixels (Sushko et al. 2020):
    alpha_c = P / (K * count_c),  P = labelled pixels in the batch, K = classes present.
Ignored pixels (ids outside [0, N)) get weight 0. The sums over pixels of equations (1)/(2) are taken
as means over the batch's pixels, so the loss does not grow with the resolution and a data-parallel
run (mean of per-rank means, with the class counts summed over ranks) equals one process on the
combined batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.generator import valid_ids


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixels of each class in a batch of BxHxW id maps (ignored ids not counted), float N-vector."""
    valid, _ = valid_ids(labels, num_classes)
    return torch.bincount(labels[valid].long().flatten(), minlength=num_classes).to(torch.float32)


def class_balance_weights(counts: torch.Tensor) -> torch.Tensor:
    """alpha_c = P / (K count_c) for present classes, 0 for absent ones (they have no pixels anyway)."""
    present = counts > 0
    k = present.sum().clamp(min=1)
    total = counts.sum()
    return torch.where(present, total / (k * counts.clamp(min=1)), torch.zeros_like(counts))


def weight_map(labels: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Per-pixel weight alpha_{s(x)}; 0 on ignored pixels."""
    valid, safe = valid_ids(labels, alpha.numel())
    return alpha.to(labels.device)[safe.long()] * valid


def balanced_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """mean_x alpha_{s(x)} * -log softmax(logits)_{s(x)}: the semantic term of equations (1) and (2)."""
    ce = F.cross_entropy(logits.float(), valid_ids(labels, alpha.numel())[1].long(), reduction="none")
    return (ce * weight_map(labels, alpha)).mean()


def fake_class_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """mean_x -log softmax(logits)_{N+1}: the fake term of equation (1), every pixel of a generated image."""
    fake = logits.shape[1] - 1
    target = torch.full((logits.shape[0], *logits.shape[2:]), fake, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target)


def oasis_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor, labels: torch.Tensor,
                 alpha: torch.Tensor) -> torch.Tensor:
    """Equation (1): segment real images into their classes, every pixel of generated ones as fake."""
    return balanced_cross_entropy(logits_real, labels, alpha) + fake_class_cross_entropy(logits_fake)


def oasis_g_loss(logits_fake: torch.Tensor, labels: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Equation (2): generated images should be segmented into the classes of their label map."""
    return balanced_cross_entropy(logits_fake, labels, alpha)


def labelmix_mask(labels: torch.Tensor, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """LabelMix (OASIS): each class present in a sample is taken from the real (1) or fake (0) image.

    Ignored pixels count as one more class. Returns Bx1xHxW float.
    """
    b = labels.shape[0]
    ids = valid_ids(labels, num_classes, fill=num_classes)[1].long()
    coin = torch.randint(0, 2, (b, num_classes + 1), generator=generator, device="cpu").to(labels.device)
    return torch.gather(coin, 1, ids.flatten(1)).view_as(labels).unsqueeze(1).float()


def labelmix_loss(d_logits_mixed: torch.Tensor, d_logits_real: torch.Tensor, d_logits_fake: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
    """|| D(mix(x, x_hat)) - mix(D(x), D(x_hat)) ||^2: D_I's logits must follow the LabelMix of its inputs."""
    target = mask * d_logits_real + (1 - mask) * d_logits_fake
    return F.mse_loss(d_logits_mixed.float(), target.float())
