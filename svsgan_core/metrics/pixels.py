"""Pixel metrics against the real frames (L1, PSNR, per frame) and the class-mean colour baseline.

These answer "did the model learn more than a colour lookup?": a generator that only paints each
class with its typical colour scores like `ClassMeanBaseline`; one that carries the reference frame's
appearance through time scores better on L1/PSNR, frame after frame.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

PSNR_CAP = 100.0  # dB for identical frames, so a mean stays finite


def l1_per_frame(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Mean absolute difference per frame, images as T x H x W x 3 uint8, in [0, 1] units."""
    diff = np.abs(fake.astype(np.float32) - real.astype(np.float32)) / 255.0
    return diff.reshape(len(fake), -1).mean(1)


def psnr_per_frame(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
    """PSNR per frame in dB with peak 1 ([0, 1] images), capped at PSNR_CAP."""
    diff = (fake.astype(np.float32) - real.astype(np.float32)) / 255.0
    mse = (diff ** 2).reshape(len(fake), -1).mean(1)
    return np.minimum(10.0 * np.log10(1.0 / np.maximum(mse, 1e-30)), PSNR_CAP)


class ClassMeanBaseline:
    """Paints every pixel with the mean colour of its class over the frames it was fitted on; classes
    never seen there get the overall mean colour."""

    def __init__(self) -> None:
        self.sums = np.zeros((256, 3), np.float64)
        self.counts = np.zeros(256, np.int64)

    def fit(self, images: np.ndarray, labels: np.ndarray) -> None:
        """images T x H x W x 3 uint8, labels T x H x W ids (< 256) of the same size."""
        images, labels = np.asarray(images), np.asarray(labels)
        if images.shape[:3] != labels.shape[:3]:
            raise InputError(f"baseline frames and label maps differ in size: {images.shape} vs {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise InputError("the class-mean baseline takes label ids 0..255")
        ids = labels.reshape(-1).astype(np.int64)
        self.counts += np.bincount(ids, minlength=256)
        for c in range(3):
            self.sums[:, c] += np.bincount(ids, weights=images[..., c].reshape(-1), minlength=256)

    @property
    def means(self) -> np.ndarray:
        if self.counts.sum() == 0:
            raise InputError("the class-mean baseline has seen no labelled frames")
        overall = self.sums.sum(0) / self.counts.sum()
        seen = self.counts > 0
        means = np.where(seen[:, None], self.sums / np.maximum(self.counts, 1)[:, None], overall)
        return np.clip(np.round(means), 0, 255).astype(np.uint8)

    def paint(self, labels: np.ndarray) -> np.ndarray:
        """T x H x W ids -> T x H x W x 3 uint8."""
        return self.means[np.asarray(labels).astype(np.int64)]
