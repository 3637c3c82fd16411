"""Semantic alignment: mIoU of a segmentation network's predictions on generated frames against the
label maps the frames were generated from (the paper uses DRN-D-105 on Cityscapes' 19 classes).

Confusion matrices have ground truth in rows and prediction in columns, over the C evaluated classes,
plus one extra column for pixels whose prediction falls outside those classes (a segmenter class the
label mapping sends to the ignore label): like the Cityscapes evaluation script, such pixels count as
misses of their true class but as nobody's false positive. Pixels whose ground truth is the ignore
label (or outside 0..C-1) are not counted at all.
"""
from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

import cv2
import numpy as np

from svsgan_core.errors import CheckpointError, InputError
from svsgan_core.metrics.weights import is_torchscript, require_weights

IGNORE_LABEL = 255


def confusion_matrix(target, pred, num_classes: int, ignore_index: int = IGNORE_LABEL) -> np.ndarray:
    """C x (C + 1) int64 counts; column C holds predictions outside the evaluated classes."""
    target = np.asarray(target).astype(np.int64).ravel()
    pred = np.asarray(pred).astype(np.int64).ravel()
    if target.shape != pred.shape:
        raise InputError(f"prediction and ground truth differ in size: {pred.size} vs {target.size} pixels")
    keep = (target >= 0) & (target < num_classes) & (target != ignore_index)
    target, pred = target[keep], pred[keep]
    pred = np.where((pred >= 0) & (pred < num_classes), pred, num_classes)
    counts = np.bincount(target * (num_classes + 1) + pred, minlength=num_classes * (num_classes + 1))
    return counts.reshape(num_classes, num_classes + 1)


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class; NaN for classes absent from both prediction and ground truth.

    Accepts C x C or C x (C + 1) matrices (the extra column only adds false negatives).
    """
    conf = np.asarray(conf, dtype=np.float64)
    c = conf.shape[0]
    tp = np.diag(conf[:, :c])
    union = conf.sum(axis=1) + conf[:, :c].sum(axis=0) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(conf: np.ndarray) -> float:
    """Mean over the classes that occur in the ground truth or the prediction."""
    iou = per_class_iou(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


class ConfusionAccumulator:
    """Sums confusion matrices over many frames, so mIoU is computed over the whole set (not per frame)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_LABEL):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, target, pred) -> None:
        self.matrix += confusion_matrix(target, pred, self.num_classes, self.ignore_index)

    def per_class_iou(self) -> np.ndarray:
        return per_class_iou(self.matrix)

    def miou(self) -> float:
        return mean_iou(self.matrix)


class Segmenter:
    """A user-supplied segmentation network (TorchScript `.pt` or ONNX `.onnx`) plus its label mapping.

    The network takes N x 3 x H x W float32 RGB, normalised as (x / 255 - mean) / std, and returns
    N x K x h x w class scores (any h x w: they are argmax-ed, then resized to the label map with
    nearest neighbour). `label_map[k]` is the dataset class of output channel k (IGNORE_LABEL where the
    dataset has no such class). A JSON file may hold the mapping and the input conventions:
    `{"label_map": [...] or {"k": id}, "mean": [r, g, b], "std": [r, g, b], "input_size": [H, W]}`.
    DRN-D-105 on Cityscapes uses mean [0.2902, 0.3281, 0.2870], std [0.1830, 0.1866, 0.1845] and its 19
    outputs are the train ids, so its label_map is the identity on train ids.
    """

    def __init__(self, model_path: str | os.PathLike, label_map: Sequence[int] | Mapping[int, int] | None = None,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 input_size: tuple[int, int] | None = None, device: str = "cpu"):
        path = require_weights(model_path, "segmenter")
        self.path = path
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
        self.input_size = tuple(input_size) if input_size else None
        self.device = device
        self._label_map = label_map
        if path.endswith(".onnx"):
            self._run = self._load_onnx(path)
        elif is_torchscript(path):
            self._run = self._load_torchscript(path, device)
        else:
            raise CheckpointError(f"{path!r} is neither a TorchScript archive nor an .onnx file; export the "
                                  f"segmentation network with torch.jit.script/trace or torch.onnx.export")

    @classmethod
    def from_files(cls, model_path, mapping_path=None, device: str = "cpu") -> "Segmenter":
        """Network plus an optional JSON with label_map / mean / std / input_size (see class doc)."""
        kwargs = {}
        if mapping_path is not None:
            try:
                with open(mapping_path) as f:
                    spec = json.load(f)
            except FileNotFoundError:
                raise InputError(f"label mapping file not found: {mapping_path!r}") from None
            except json.JSONDecodeError as exc:
                raise InputError(f"label mapping {mapping_path!r} is not valid JSON: {exc}") from None
            if isinstance(spec, list):
                spec = {"label_map": spec}
            kwargs = {k: spec[k] for k in ("label_map", "mean", "std", "input_size") if k in spec}
        return cls(model_path, device=device, **kwargs)

    @staticmethod
    def _load_onnx(path: str):
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError("ONNX segmenters need onnxruntime: pip install onnxruntime") from None
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]

    @staticmethod
    def _load_torchscript(path: str, device: str):
        import torch

        try:
            net = torch.jit.load(path, map_location=device).eval()
        except RuntimeError as exc:
            raise CheckpointError(f"cannot load the TorchScript segmenter {path!r}: {exc}") from exc

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                out = net(torch.from_numpy(x).to(device))
            if isinstance(out, (tuple, list)):
                out = out[0]
            elif isinstance(out, dict):
                out = out.get("out", next(iter(out.values())))
            return out.float().cpu().numpy()
        return run

    def _lookup(self, num_outputs: int) -> np.ndarray:
        if self._label_map is None:
            return np.arange(num_outputs, dtype=np.int64)
        table = np.full(max(num_outputs, 1), IGNORE_LABEL, dtype=np.int64)
        items = (self._label_map.items() if isinstance(self._label_map, Mapping)
                 else enumerate(self._label_map))
        for k, v in items:
            if 0 <= int(k) < num_outputs:
                table[int(k)] = int(v)
        return table

    def predict(self, images: np.ndarray) -> np.ndarray:
        """N x H x W x 3 (or H x W x 3) uint8 RGB -> N x H x W int64 labels in the dataset's label space."""
        single = images.ndim == 3
        images = images[None] if single else images
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise InputError(f"expected uint8 RGB images N x H x W x 3, got {images.shape} {images.dtype}")
        n, h, w, _ = images.shape
        batch = images
        if self.input_size and self.input_size != (h, w):
            batch = np.stack([cv2.resize(im, self.input_size[::-1], interpolation=cv2.INTER_LINEAR)
                              for im in images])
        x = (batch.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - self.mean) / self.std
        scores = np.asarray(self._run(np.ascontiguousarray(x, dtype=np.float32)))
        if scores.ndim != 4 or scores.shape[0] != n:
            raise InputError(f"segmenter output should be N x K x h x w scores, got {scores.shape}")
        classes = scores.argmax(axis=1).astype(np.int32)
        if classes.shape[1:] != (h, w):
            classes = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_NEAREST) for c in classes])
        labels = self._lookup(scores.shape[1])[classes]
        return labels[0] if single else labels
