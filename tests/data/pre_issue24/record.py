"""Records what a checkpoint written before issue 24's instance-edge channel computes (run once, at the
commit before the model change; tests/test_instance_edges.py holds later code to it).

    PYTHONPATH=. python tests/data/pre_issue24/record.py

Writes checkpoint/ (a micro model in the old config format: no instance_edges key, the demo's choices
of composite, class colours, detail from the decoder and bicubic warping, random weights with a moving
flow) and frames.npz (the frames VideoSynthesizer makes from it on a fixed label stream, and the ONNX
cache key of its step graph).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from svsgan_core.models import SVSGenerator
from svsgan_core.models.config import ModelConfig
from svsgan_core.runtime.checkpoint import save_checkpoint
from svsgan_core.runtime.synthesizer import VideoSynthesizer

HERE = Path(__file__).resolve().parent
CONFIG = dict(height=32, width=64, dec_channels=[8, 8, 16], img_channels=[4, 4, 8], sem_channels=[4, 4, 8],
              bottleneck_channels=4, spade_hidden=8, flow_channels=[4, 8], flow_res_blocks=1, d_channels=[8, 8],
              dv_channels=[8, 8], occlusion_composite=True, detail_from_decoder=True, warp_mode="bicubic",
              class_colour=True)


def label_stream(frames: int = 5) -> list[np.ndarray]:
    """Blocks of class ids at the model's size, moving 3 pixels per frame."""
    base = np.random.default_rng(24).integers(0, 19, (8, 16)).astype(np.uint8)
    big = np.kron(base, np.ones((4, 4), np.uint8))  # 32x64
    return [np.ascontiguousarray(np.roll(big, 3 * k, axis=1)) for k in range(frames)]


def reference_image() -> np.ndarray:
    return np.random.default_rng(25).integers(0, 256, (32, 64, 3)).astype(np.uint8)


def run(checkpoint: Path) -> np.ndarray:
    """First-frame mode for the whole stream, then a stream that starts from a reference image."""
    synth = VideoSynthesizer.from_checkpoint(checkpoint, device="cpu", precision="fp32", channels_last=False,
                                             optimize="none", backend="torch")
    stream = label_stream()
    synth.reset()
    frames = [synth.step(lab) for lab in stream]
    synth.reset(reference_image=reference_image())
    frames += [synth.step(lab) for lab in stream[:3]]
    return np.stack(frames)


def main() -> None:
    torch.manual_seed(24)
    gen = SVSGenerator(ModelConfig(**CONFIG))
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # class colours and the flow head start at zero: move them
        gen.flow_net.flow_head.bias.copy_(torch.tensor([1.5, -0.5]))
    ckpt = save_checkpoint(HERE / "checkpoint", gen, meta={"note": "recorded before issue 24's model change"})
    frames = run(ckpt)
    from svsgan_core.runtime.export import cached_onnx

    with tempfile.TemporaryDirectory() as cache:
        os.environ["SVSGAN_CACHE_DIR"] = cache
        key = cached_onnx(ckpt).stem
    np.savez_compressed(HERE / "frames.npz", frames=frames, onnx_cache_key=np.array(key))
    print(f"recorded {frames.shape} frames, ONNX cache key {key}")


if __name__ == "__main__":
    main()
