"""The SVS-GAN losses (Section 3.3, appendix A): one file per family, combined in `total`."""
from .adversarial import GAN_MODES, video_d_loss, video_g_loss
from .feature_matching import feature_matching, video_feature_matching
from .flow import flow_l1, occlusion_bce, occlusion_target, warp_l1, warp_labels
from .oasis import (
    balanced_cross_entropy,
    class_balance_weights,
    class_counts,
    fake_class_cross_entropy,
    labelmix_loss,
    labelmix_mask,
    oasis_d_loss,
    oasis_g_loss,
)
from .total import LossConfig, SVSGANLoss

__all__ = [
    "GAN_MODES", "LossConfig", "SVSGANLoss", "balanced_cross_entropy", "class_balance_weights", "class_counts",
    "fake_class_cross_entropy", "feature_matching", "flow_l1", "labelmix_loss", "labelmix_mask",
    "occlusion_bce", "occlusion_target", "oasis_d_loss", "oasis_g_loss", "video_d_loss",
    "video_feature_matching", "video_g_loss", "warp_l1", "warp_labels",
]
