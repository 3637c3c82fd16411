"""The SVS-GAN networks, one file per component of Figure 2."""
from .discriminators import OASISDiscriminator, TemporalDiscriminator, VideoDiscriminators
from .flow import FlowOcclusionNet, warp
from .generator import OcclusionFusion, SVSGenerator, one_hot

__all__ = [
    "FlowOcclusionNet", "OASISDiscriminator", "OcclusionFusion", "SVSGenerator", "TemporalDiscriminator",
    "VideoDiscriminators", "one_hot", "warp",
]
