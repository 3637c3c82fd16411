"""Boundary contrast: is the seam between two touching objects of one class visible in a generated frame?

A semantic map draws two cars parked bumper to bumper as one car-shaped blob; only the instance map
knows where one ends. A generator without instance information paints the blob as one object, with no
edge where the real frame has one. For every pair of touching same-class instances of the ground-truth
instance map (4-neighbour pixel pairs p, q with the same label and different instance ids: the *seam*)
this measures the mean absolute luma difference |Y(p) − Y(q)| across the seam, in the generated frame
and in the real one (docs/metrics.md):

    boundary_fake = mean over pairs of (mean over the pair's seam of |Y_fake(p) − Y_fake(q)|)
    boundary_real = the same on the real frames
    boundary      = boundary_fake / boundary_real      (1: as visible as in the camera; 0: one blob)

Luma is BT.601 (OpenCV's RGB -> gray), 0..255. Pairs whose seam is shorter than `min_seam` pixel pairs
in a frame are left out (a corner contact of one pixel says nothing). Pixels with the ignore label do
not form seams. Frames without instance ids (or whose ids are the labels, the datasets' fallback) have
no seams and add nothing.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError

MIN_SEAM = 4  # pixel pairs a pair of instances must share in a frame to count


def _luma(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32)


def seam_contrast(images: list[np.ndarray], labels: np.ndarray, instances: np.ndarray, ignore_index: int | None = None,
                  min_seam: int = MIN_SEAM) -> tuple[np.ndarray, list[np.ndarray]]:
    """One frame: (seam length per pair, [mean |ΔY| across each pair's seam, one array per image]).

    `images`: H×W×3 uint8 RGB frames of the same scene (generated, real, ...); `labels`, `instances`: H×W.
    Pairs are the unordered (instance, instance) couples of one class that touch; only those whose seam
    has at least `min_seam` pixel pairs are returned.
    """
    labels, instances = np.asarray(labels), np.asarray(instances)
    if labels.shape != instances.shape or labels.ndim != 2:
        raise InputError(f"boundary contrast: labels {labels.shape} and instance ids {instances.shape} must be one H×W")
    lumas = [_luma(im) for im in images]
    for im in images:
        if im.shape[:2] != labels.shape:
            raise InputError(f"boundary contrast: frame {im.shape[:2]} and labels {labels.shape} differ in size")
    ids = instances.astype(np.int64)
    keys, diffs = [], [[] for _ in images]
    for sl_a, sl_b in (((slice(None), slice(None, -1)), (slice(None), slice(1, None))),   # left | right
                       ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))):  # above / below
        a, b = ids[sl_a], ids[sl_b]
        seam = (labels[sl_a] == labels[sl_b]) & (a != b)
        if ignore_index is not None:
            seam &= labels[sl_a] != ignore_index
        if not seam.any():
            continue
        lo, hi = np.minimum(a[seam], b[seam]), np.maximum(a[seam], b[seam])
        keys.append(np.stack([labels[sl_a][seam].astype(np.int64), lo, hi], 1))
        for k, y in enumerate(lumas):
            diffs[k].append(np.abs(y[sl_a][seam] - y[sl_b][seam]))
    if not keys:
        return np.zeros(0, np.int64), [np.zeros(0, np.float64) for _ in images]
    _, pair = np.unique(np.concatenate(keys), axis=0, return_inverse=True)
    pair = pair.reshape(-1)
    length = np.bincount(pair)
    keep = length >= min_seam
    means = [np.bincount(pair, weights=np.concatenate(d))[keep] / length[keep] for d in diffs]
    return length[keep], means


class BoundaryContrast:
    """Accumulates seam contrast of generated and real frames over sequences (see the module docstring)."""

    def __init__(self, ignore_index: int | None = None, min_seam: int = MIN_SEAM):
        self.ignore_index, self.min_seam = ignore_index, min_seam
        self.fake: list[np.ndarray] = []
        self.real: list[np.ndarray] = []
        self.frames = 0

    def add_sequence(self, fake: np.ndarray, real: np.ndarray, labels: np.ndarray, instances: np.ndarray) -> None:
        """fake, real: T×H×W×3 uint8 at one size; labels, instances: T×H×W ground truth at that size."""
        if not (len(fake) == len(real) == len(labels) == len(instances)):
            raise InputError("boundary contrast: generated, real, labels and instances differ in length")
        for f, r, lab, ids in zip(fake, real, labels, instances):
            _, (cf, cr) = seam_contrast([f, r], lab, ids, self.ignore_index, self.min_seam)
            if len(cf):
                self.fake.append(cf)
                self.real.append(cr)
                self.frames += 1

    @property
    def pairs(self) -> int:
        return sum(len(c) for c in self.fake)

    def results(self) -> dict[str, float]:
        """{} without a single touching pair; else boundary (generated over real), boundary_fake,
        boundary_real (mean |ΔY| across a seam, 0..255) and boundary_pairs (pair-frames counted)."""
        if not self.pairs:
            return {}
        fake, real = float(np.concatenate(self.fake).mean()), float(np.concatenate(self.real).mean())
        return {"boundary": fake / max(real, 1e-6), "boundary_fake": fake, "boundary_real": real,
                "boundary_pairs": self.pairs}
