"""The public streaming API under the name the README has always shown; the code is in runtime/."""
from .runtime.checkpoint import fold_spectral_norm, prepare_for_inference
from .runtime.synthesizer import Stream, VideoSynthesizer

__all__ = ["Stream", "VideoSynthesizer", "fold_spectral_norm", "prepare_for_inference"]
