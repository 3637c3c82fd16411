"""Pixel metrics against the real frames (L1, PSNR, sharpness, per frame) and the class-mean colour baseline.

These answer "did the model learn more than a colour lookup?": a generator that only paints each
class with its typical colour scores like `ClassMeanBaseline`; one that carries the reference frame's
appearance through time scores better on L1/PSNR, frame after frame. L1 rewards blur (the mean is the
L1-optimal guess under uncertainty), so sharpness is reported beside it: a blurry model can win on L1
and still draw a tenth of the camera's detail.
"""
from __future__ import annotations

import cv2
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


def laplacian_variance(frames: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of each frame's luma (T x H x W x 3 uint8 -> T floats, [0, 255]
    units): how much fine detail (edges, texture) a frame holds."""
    out = np.empty(len(frames), np.float64)
    for t, frame in enumerate(frames):
        luma = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32)
        out[t] = float(cv2.Laplacian(luma, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT).var())
    return out


def sharpness_per_frame(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Laplacian variance of each generated frame over that of its real frame: 1 = as much fine detail
    as the camera frame, below 1 blurrier, above 1 more high-frequency content (detail or noise)."""
    return laplacian_variance(fake) / np.maximum(laplacian_variance(real), 1e-6)


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

    @classmethod
    def fitted(cls, sequences) -> "ClassMeanBaseline":
        """Fit on (real T x H x W x 3 uint8, labels T x H' x W') pairs; label maps of another size are
        resized to their frames (nearest), as `svsgan eval` reads them."""
        baseline = cls()
        for real, labels in sequences:
            if labels is None:
                raise InputError("the class-mean baseline needs label maps (folder mode: --labels DIR)")
            if real.shape[1:3] != labels.shape[1:3]:
                labels = np.stack([cv2.resize(lab, real.shape[2:0:-1], interpolation=cv2.INTER_NEAREST)
                                   for lab in labels])
            baseline.fit(real, labels)
        return baseline

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
