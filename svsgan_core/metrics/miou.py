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
import torch

from ..data.labels import get_label_space, thing_ids
from ..errors import CheckpointError, InputError, MissingWeightsError
from .weights import KNOWN_WEIGHTS, is_torchscript, require_weights

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


#: Hugging Face architectures whose output is per-query masks and classes (turned into per-class scores
#: the way their semantic post-processing does); every other model_type is read as N x K x h x w logits.
MASK_CLASSIFIERS = ("mask2former", "oneformer", "maskformer")
#: panoptic inference of the mask classifiers (Mask2Former's panoptic configs): a query is an object when
#: its class score exceeds OBJECT_THRESHOLD, and a segment when most of its mask (OVERLAP_THRESHOLD) wins
OBJECT_THRESHOLD, MASK_THRESHOLD, OVERLAP_THRESHOLD = 0.8, 0.5, 0.8


class Segmenter:
    """A user-supplied segmentation network plus its label mapping: one loader for mIoU and pseudo-labels.

    Three kinds of local file, nothing is downloaded:
    - TorchScript `.pt` or ONNX `.onnx`: takes N x 3 x H x W float32 RGB, normalised as
      (x / 255 - mean) / std, and returns N x K x h x w class scores;
    - a Hugging Face `transformers` folder written by `save_pretrained` (SegFormer, UperNet and other
      semantic-segmentation heads; Mask2Former / OneFormer via their mask and class queries). Its
      config's `id2label` names the classes and `preprocessor_config.json` (if present) gives mean/std.
    Scores of any h x w are argmax-ed, then resized to the image with nearest neighbour.

    Output class k becomes dataset class `label_map[k]` (IGNORE_LABEL where the dataset has no such
    class). With a `label_space`, classes are matched by name instead (`class_names`, or the HF
    id2label): every name must exist in the space, else an InputError lists the missing ones;
    `class_map` renames model classes first ({"person": "pedestrian"}; null = ignore the class).
    A JSON file may hold the mapping and the input conventions: `{"label_map": [...] or {"k": id},
    "class_names": [...], "class_map": {...}, "mean": [r, g, b], "std": [r, g, b], "input_size": [H, W]}`.
    DRN-D-105 on Cityscapes uses mean [0.2902, 0.3281, 0.2870], std [0.1830, 0.1866, 0.1845] and its 19
    outputs are the train ids, so its label_map is the identity on train ids.
    """

    def __init__(self, model_path: str | os.PathLike, label_map: Sequence[int] | Mapping[int, int] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 input_size: tuple[int, int] | None = None, device: str = "cpu", label_space=None,
                 class_names: Sequence[str] | None = None, class_map: Mapping[str, str | None] | None = None):
        if model_path is not None and not os.path.exists(model_path):
            raise MissingWeightsError(f"no segmentation network at {os.fspath(model_path)!r}: "
                                      f"{KNOWN_WEIGHTS['segmenter'].source}")
        self._panoptic = None  # (class logits, mask logits) of a mask classifier, for instance maps
        if model_path is not None and os.path.isdir(model_path):
            self.path = os.fspath(model_path)
            self._run, self._panoptic, hf_names, hf_mean, hf_std = _load_transformers(self.path, device)
            class_names = class_names or hf_names
            mean = hf_mean if mean is None else mean
            std = hf_std if std is None else std
            self.multiple = 32  # backbone strides: feed sizes they divide
        else:
            path = require_weights(model_path, "segmenter")
            self.path = path
            self.multiple = 1
            if path.endswith(".onnx"):
                self._run = self._load_onnx(path)
            elif is_torchscript(path):
                self._run = self._load_torchscript(path, device)
            else:
                raise CheckpointError(f"{path!r} is neither a TorchScript archive, an .onnx file nor a "
                                      f"transformers folder; export the segmentation network with "
                                      f"torch.jit.script/trace or torch.onnx.export, or save_pretrained it")
        self.mean = np.asarray((0.485, 0.456, 0.406) if mean is None else mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray((0.229, 0.224, 0.225) if std is None else std, dtype=np.float32).reshape(1, 3, 1, 1)
        self.input_size = tuple(input_size) if input_size else None
        self.device = device
        self.class_names = tuple(class_names) if class_names else None
        self.label_space = get_label_space(label_space) if label_space is not None else None
        if label_map is None and label_space is not None and self.class_names:
            label_map = label_map_by_name(self.class_names, label_space, class_map)
        self._label_map = label_map

    @classmethod
    def from_files(cls, model_path, mapping_path=None, device: str = "cpu", label_space=None) -> "Segmenter":
        """Network plus an optional JSON with label_map / class_names / class_map / mean / std / input_size."""
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
            kwargs = {k: spec[k] for k in ("label_map", "class_names", "class_map", "mean", "std", "input_size")
                      if k in spec}
        return cls(model_path, device=device, label_space=label_space, **kwargs)

    @staticmethod
    def _load_onnx(path: str):
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError("ONNX segmenters need onnxruntime: pip install onnxruntime") from None
        try:
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own classes (InvalidProtobuf, Fail, ...)
            raise CheckpointError(f"cannot load the ONNX segmenter {path!r}: {str(exc).strip()}; export the "
                                  "segmentation network with torch.onnx.export") from None
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]

    @staticmethod
    def _load_torchscript(path: str, device: str):
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

    def _inputs(self, images: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 RGB -> the network's N x 3 x H' x W' float32 input (resized, normalised)."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise InputError(f"expected uint8 RGB images N x H x W x 3, got {images.shape} {images.dtype}")
        n, h, w, _ = images.shape
        size = self.input_size or (h, w)
        m = self.multiple
        size = (max(m, round(size[0] / m) * m), max(m, round(size[1] / m) * m))
        batch = images
        if size != (h, w):
            batch = np.stack([cv2.resize(im, size[::-1], interpolation=cv2.INTER_LINEAR) for im in images])
        x = (batch.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - self.mean) / self.std
        return np.ascontiguousarray(x, dtype=np.float32)

    @property
    def panoptic(self) -> bool:
        """Whether `predict_segments` can find objects: a mask-classification model (Mask2Former, OneFormer,
        MaskFormer) with a label space to tell things from stuff."""
        return self._panoptic is not None and self.label_space is not None

    def predict_segments(self, images: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 RGB -> N x H x W int32 object segments: 0 where no object is, k = 1, 2, ...
        on the k-th object (a segment whose class is a thing of the label space), by Mask2Former's panoptic
        inference: queries whose best class is not "no object" and scores above OBJECT_THRESHOLD compete
        per pixel by mask probability times score; a query keeps its pixels when they are more than
        OVERLAP_THRESHOLD of its own mask (probability times score >= MASK_THRESHOLD). Stuff segments are
        left out: the label map already separates them. Combine with labels by
        svsgan_core.data.instances.thing_instance_ids."""
        if not self.panoptic:
            raise InputError(f"{self.path}: instance maps need a panoptic (mask-classification) segmenter, a "
                             f"transformers Mask2Former, OneFormer or MaskFormer folder, and a label space")
        images = images[None] if images.ndim == 3 else images
        n, h, w, _ = images.shape
        class_logits, mask_logits = self._panoptic(self._inputs(images))
        things = thing_ids(self.label_space)
        lookup = self._lookup(class_logits.shape[-1] - 1)
        out = np.zeros((n, h, w), np.int32)
        for i in range(n):
            segments = _object_segments(class_logits[i], mask_logits[i], lambda c: int(lookup[c]) in things)
            out[i] = cv2.resize(segments, (w, h), interpolation=cv2.INTER_NEAREST) if segments.shape != (h, w) \
                else segments
        return out

    def predict(self, images: np.ndarray) -> np.ndarray:
        """N x H x W x 3 (or H x W x 3) uint8 RGB -> N x H x W int64 labels in the dataset's label space."""
        single = images.ndim == 3
        images = images[None] if single else images
        x = self._inputs(images)
        n, h, w, _ = images.shape
        scores = np.asarray(self._run(x))
        if scores.ndim != 4 or scores.shape[0] != n:
            raise InputError(f"segmenter output should be N x K x h x w scores, got {scores.shape}")
        classes = scores.argmax(axis=1).astype(np.int32)
        if classes.shape[1:] != (h, w):
            classes = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_NEAREST) for c in classes])
        labels = self._lookup(scores.shape[1])[classes]
        return labels[0] if single else labels


def _object_segments(class_logits: np.ndarray, mask_logits: np.ndarray, is_thing) -> np.ndarray:
    """One image's Q x (K+1) class logits and Q x h x w mask logits -> h x w int32 object segments (see
    Segmenter.predict_segments); the same steps as Mask2Former's panoptic post-processing."""
    logits = class_logits.astype(np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    scores, classes = probs.max(-1), probs.argmax(-1)
    keep = np.flatnonzero((classes != class_logits.shape[-1] - 1) & (scores > OBJECT_THRESHOLD))
    segments = np.zeros(mask_logits.shape[1:], np.int32)
    if not keep.size:
        return segments
    # sigmoid as (1 + tanh(x / 2)) / 2: no overflow in exp for mask logits beyond +-88 (float32)
    masks = 0.5 * (1.0 + np.tanh(0.5 * mask_logits[keep].astype(np.float32))) * scores[keep, None, None].astype(np.float32)
    winner = masks.argmax(0)
    count = 0
    for k, query in enumerate(keep):
        mine = winner == k
        area, whole = int(mine.sum()), int((masks[k] >= MASK_THRESHOLD).sum())
        if area and whole and area / whole > OVERLAP_THRESHOLD and is_thing(int(classes[query])):
            count += 1
            segments[mine] = count
    return segments


def _normalise_name(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def label_map_by_name(class_names: Sequence[str], label_space, class_map: Mapping[str, str | None] | None = None
                      ) -> list[int]:
    """Output index -> id in `label_space`, matching class names (case, '_' and '-' ignored).

    `class_map` renames a model class to a space class first, or to None to send it to IGNORE_LABEL.
    Any other name the space lacks is an InputError that lists them all.
    """

    space = get_label_space(label_space)
    ids = {_normalise_name(n): i for i, n in enumerate(space.class_names)}
    renames = {_normalise_name(k): v for k, v in (class_map or {}).items()}
    table, missing = [], []
    for name in class_names:
        key = _normalise_name(name)
        if key in renames:
            if renames[key] is None:
                table.append(IGNORE_LABEL)
                continue
            key = _normalise_name(renames[key])
        if key in ids:
            table.append(ids[key])
        else:
            table.append(IGNORE_LABEL)
            missing.append(str(name))
    if missing:
        raise InputError(f"label space {space.name!r} has no class named {', '.join(repr(m) for m in missing)} "
                         f"(segmenter classes); give a class_map in the --segmenter-labels JSON, e.g. "
                         f'{{"class_map": {{"{missing[0]}": "<a {space.name} class>" or null to ignore}}}}')
    return table


def _load_transformers(folder: str, device: str):
    """A save_pretrained folder -> (run(x) -> N x K x h x w scores, panoptic(x) -> (N x Q x (K+1) class logits,
    N x Q x h x w mask logits) or None for a per-pixel model, class names, mean, std)."""
    try:
        import transformers
    except ImportError:
        raise InputError(f"{folder!r} is a Hugging Face model folder; reading it needs transformers: "
                         f"pip install 'svsgan[segment]' (or pip install transformers)") from None
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise CheckpointError(f"segmenter folder {folder!r} has no config.json: save the model there with "
                              f"model.save_pretrained(folder) (Hugging Face transformers)")
    transformers.utils.logging.disable_progress_bar()
    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.model_type in MASK_CLASSIFIERS:
            model = transformers.AutoModelForUniversalSegmentation.from_pretrained(folder, local_files_only=True)
        else:
            model = transformers.AutoModelForSemanticSegmentation.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot load the transformers segmenter in {folder!r}: {exc}") from None
    model = model.to(device).eval()
    id2label = {int(k): v for k, v in (config.id2label or {}).items()}
    names = [id2label.get(i, f"LABEL_{i}") for i in range(len(id2label))]
    mean = std = None
    # an image processor's own file, or (transformers 5's processor.save_pretrained) the processor's, inside it
    for processor_file in (os.path.join(folder, n) for n in ("preprocessor_config.json", "processor_config.json")):
        if os.path.isfile(processor_file):
            with open(processor_file) as f:
                spec = json.load(f)
            spec = spec.get("image_processor", spec) if isinstance(spec, dict) else {}
            mean, std = spec.get("image_mean"), spec.get("image_std")
            if mean is not None:
                break
    # OneFormer's task tokens, "semantic" for the labels and "panoptic" (the same network told to find objects)
    tasks = _oneformer_task_inputs(folder, config.task_seq_len) if config.model_type == "oneformer" else None
    task_inputs = None if tasks is None else tasks["semantic"]

    def panoptic(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        extra = {} if tasks is None else {"task_inputs": tasks["panoptic"].to(device).expand(len(x), -1)}
        with torch.inference_mode():
            out = model(pixel_values=torch.from_numpy(x).to(device), **extra)
        return out.class_queries_logits.float().cpu().numpy(), out.masks_queries_logits.float().cpu().numpy()

    def run(x: np.ndarray) -> np.ndarray:
        pixels = torch.from_numpy(x).to(device)
        with torch.inference_mode():
            if config.model_type in MASK_CLASSIFIERS:
                extra = {} if task_inputs is None else {"task_inputs": task_inputs.to(device).expand(len(x), -1)}
                out = model(pixel_values=pixels, **extra)
                classes = out.class_queries_logits.softmax(-1)[..., :-1]  # the last class is "no object"
                scores = torch.einsum("nqk,nqhw->nkhw", classes, out.masks_queries_logits.sigmoid())
            else:
                scores = model(pixel_values=pixels).logits
        return scores.float().cpu().numpy()
    return run, panoptic if config.model_type in MASK_CLASSIFIERS else None, names, mean, std


def _oneformer_task_inputs(folder: str, length: int) -> dict[str, torch.Tensor]:
    """OneFormer is told its task in text: the tokenised "the task is <task>" for each of its tasks (1 x length),
    from its processor. With an image processor but no tokenizer saved, transformers still makes a processor,
    on an empty vocabulary that gives every task the same tokens: refused too, as the network could not be
    told its task."""
    import transformers

    tasks = ("semantic", "instance", "panoptic")
    try:
        processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
        tokens = processor(images=[np.zeros((32, 32, 3), np.uint8)] * len(tasks), task_inputs=list(tasks),
                           return_tensors="pt")["task_inputs"]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"OneFormer in {folder!r} needs its processor (tokenizer) saved beside it: "
                              f"processor.save_pretrained({folder!r}) ({exc})") from None
    if len(torch.unique(tokens, dim=0)) < len(tasks):
        raise CheckpointError(f"OneFormer in {folder!r} needs its processor (tokenizer) saved beside it: its "
                              f"tokenizer gives the tasks {', '.join(tasks)} the same tokens (no vocabulary "
                              f"saved?); processor.save_pretrained({folder!r})")
    if tokens.shape[-1] != length:
        raise CheckpointError(f"OneFormer in {folder!r}: its processor makes {tokens.shape[-1]} task tokens but the "
                              f"model reads {length} (task_seq_len): save the processor that belongs to this model "
                              f"beside it, processor.save_pretrained({folder!r})")
    return {task: tokens[k: k + 1] for k, task in enumerate(tasks)}
