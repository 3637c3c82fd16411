"""The SVS-GAN networks, one file per component of Figure 2."""
from svsgan_core.models.discriminators import OASISDiscriminator, TemporalDiscriminator, VideoDiscriminators
from svsgan_core.models.flow import FlowOcclusionNet, resize_flow, warp
from svsgan_core.models.generator import OcclusionFusion, SVSGenerator, one_hot

__all__ = [
    "FlowOcclusionNet", "OASISDiscriminator", "OcclusionFusion", "SVSGenerator", "TemporalDiscriminator",
    "VideoDiscriminators", "one_hot", "resize_flow", "warp",
]
