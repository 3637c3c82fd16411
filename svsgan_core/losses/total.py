"""The SVS-GAN objective: the generator loss of equation (7) and the two discriminator losses.

    L_G = lambda_GI L_GI + lambda_adv L_adv + lambda_OF L_OF + lambda_W L_W + lambda_OC L_OC
          + lambda_VGG L_VGG + lambda_FM (L_FM(D_I) + L_FM(D_V))

Equation (7) writes L_GI and L_adv with weight 1 and hides lambda_OF / lambda_W inside L_Flow; every
weight is a `LossConfig` field so configs can set them. L_FM(D_V) is the mean over D_V's temporal
scales (losses/feature_matching.py), so lambda_FM weighs the image and the video family alike. L_OC (occlusion supervision) is not in (7):
without it nothing tells the occlusion map what to mean. Per-frame terms are means over the frames
of a step; a weight of 0 skips a term's computation entirely (and a VGG weight of 0 needs no file).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..models.flow import warp
from . import adversarial, oasis
from .feature_matching import feature_matching, video_feature_matching
from .flow import flow_l1, occlusion_bce, occlusion_target, warp_l1
from .vgg import VGG19, VGGLoss


@dataclass
class LossConfig:
    gan_mode: str = "hinge"  # L_adv form for D_V: hinge | lsgan | bce (equation (3) as written)
    oasis: float = 1.0  # L_GI, equation (2)
    video: float = 1.0  # L_adv, equation (3)
    flow: float = 10.0  # lambda_OF, equation (6)
    warp: float = 10.0  # lambda_W, equation (6)
    occlusion: float = 1.0  # occlusion-map supervision
    vgg: float = 10.0  # lambda_VGG, equation (4)
    fm: float = 10.0  # lambda_FM, equation (5)
    labelmix: float = 10.0  # OASIS LabelMix regulariser of D_I; 0 disables it
    vgg_weights: str | None = None  # torchvision vgg19-dcbb9e9d.pth; None = $TORCH_HOME/hub/checkpoints
    l1: float = 0.0  # pixel L1 to the real frame (not in the paper: the reconstruction term when no VGG19 file is at hand)
    l1_lowpass: int = 1  # compare box-filtered frames (2**k averages): only the low frequencies, the rest is the GANs' to draw
    occlusion_threshold: float = 0.2  # photometric error (RGB in [-1, 1]) above which a pixel is occluded
    occlusion_min_size: int = 3  # occluded regions narrower than this (pixels, odd) are outline slivers, not new content

    def validate(self) -> None:
        if self.gan_mode not in adversarial.GAN_MODES:
            raise InputError(f"loss.gan_mode must be one of {', '.join(adversarial.GAN_MODES)}, not {self.gan_mode!r}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type == "float" and (not isinstance(v, (int, float)) or v < 0):
                raise InputError(f"loss.{f.name} must be a non-negative number, got {v!r}")
        if not isinstance(self.occlusion_min_size, int) or self.occlusion_min_size < 1 or self.occlusion_min_size % 2 == 0:
            raise InputError(f"loss.occlusion_min_size must be an odd whole number >= 1, got {self.occlusion_min_size!r}")
        if not isinstance(self.l1_lowpass, int) or self.l1_lowpass < 1:
            raise InputError(f"loss.l1_lowpass must be a whole number >= 1, got {self.l1_lowpass!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def lowpass_l1(fake: torch.Tensor, real: torch.Tensor, factor: int = 1) -> torch.Tensor:
    """mean |fake - real| after averaging `factor` x `factor` blocks of both (1: per pixel), in fp32."""
    fake, real = fake.float(), real.float()
    if factor > 1:
        fake, real = F.avg_pool2d(fake, factor, ceil_mode=True), F.avg_pool2d(real, factor, ceil_mode=True)
    return (fake - real).abs().mean()


class SVSGANLoss(nn.Module):
    """Computes the loss terms from network outputs; holds the (frozen) VGG19 when lambda_VGG > 0."""

    def __init__(self, cfg: LossConfig, num_classes: int, vgg: nn.Module | None = None):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.num_classes = num_classes
        self.vgg = None
        if cfg.vgg > 0:
            if vgg is None:

                vgg = VGGLoss(VGG19.from_file(cfg.vgg_weights))
            self.vgg = vgg

    # -- generator ---------------------------------------------------------------------------------
    def generator_image(self, fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor, alpha: torch.Tensor,
                        d_fake: tuple[torch.Tensor, list[torch.Tensor]],
                        d_real_feats: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Per-frame appearance terms for generated frames (stacked along the batch): L_GI, L_VGG, L_FM(D_I)."""
        logits_fake, feats_fake = d_fake
        terms = {"G_oasis": oasis.oasis_g_loss(logits_fake, labels, alpha)}
        if self.cfg.fm > 0 and d_real_feats is not None:
            terms["G_fm_image"] = feature_matching(feats_fake, d_real_feats)
        if self.vgg is not None:
            terms["G_vgg"] = self.vgg(fake, real)
        if self.cfg.l1 > 0:
            terms["G_l1"] = lowpass_l1(fake, real, self.cfg.l1_lowpass)
        return terms

    def generator_flow(self, flow: torch.Tensor, occlusion_logits: torch.Tensor, real: torch.Tensor, prev_real: torch.Tensor,
                       labels: torch.Tensor | None = None, prev_labels: torch.Tensor | None = None,
                       flow_gt: torch.Tensor | None = None, conf: torch.Tensor | None = None
                       ) -> dict[str, torch.Tensor]:
        """Equation (6) and the occlusion term for frames generated from a previous frame.

        Without pseudo-GT flow only the warp term remains (unmasked).
        """
        c = self.cfg
        terms: dict[str, torch.Tensor] = {}
        if c.warp > 0:
            terms["G_warp"] = warp_l1(warp(prev_real, flow), real, conf)
        if flow_gt is not None:
            if c.flow > 0:
                terms["G_flow"] = flow_l1(flow, flow_gt, conf)
            if c.occlusion > 0:
                target = occlusion_target(prev_real, real, flow_gt, conf, prev_labels, labels, c.occlusion_threshold,
                                          c.occlusion_min_size)
                terms["G_occlusion"] = occlusion_bce(occlusion_logits, target)
        return terms

    def generator_video(self, dv_fake: list, dv_real: list | None) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if not dv_fake:
            return terms
        if self.cfg.video > 0:
            terms["G_video"] = adversarial.video_g_loss(dv_fake, self.cfg.gan_mode)
        if self.cfg.fm > 0 and dv_real:
            terms["G_fm_video"] = video_feature_matching(dv_fake, dv_real)
        return terms

    def weight(self, name: str) -> float:
        c = self.cfg
        return {"G_oasis": c.oasis, "G_video": c.video, "G_flow": c.flow, "G_warp": c.warp,
                "G_occlusion": c.occlusion, "G_vgg": c.vgg, "G_fm_image": c.fm, "G_fm_video": c.fm, "G_l1": c.l1,
                "D_image": 1.0, "D_labelmix": c.labelmix, "D_video": c.video}[name]

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Equation (7) for generator terms (or the D objective for D terms): the weighted sum."""
        if not terms:
            raise ValueError("no loss terms to sum")
        return sum(self.weight(k) * v for k, v in terms.items())

    # -- discriminators ----------------------------------------------------------------------------
    def discriminator_image(self, logits_real: torch.Tensor, logits_fake: torch.Tensor, labels: torch.Tensor,
                            alpha: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"D_image": oasis.oasis_d_loss(logits_real, logits_fake, labels, alpha)}

    def discriminator_video(self, dv_real: list, dv_fake: list) -> dict[str, torch.Tensor]:
        if not dv_real or self.cfg.video <= 0:
            return {}
        return {"D_video": adversarial.video_d_loss(dv_real, dv_fake, self.cfg.gan_mode)}
