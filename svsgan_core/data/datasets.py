"""Torch datasets of training clips: consecutive frames of one sequence, resized and augmented alike.

One item is a dict:
- ``images`` float32 T×3×H×W in [-1, 1]; ``labels`` int64 T×H×W in the model's label space (its
  ignore index kept, e.g. 255 for Cityscapes trainIds);
- with ``with_flow``: ``flow`` float32 T×2×H×W (backward, pixels of the output grid, see
  svsgan_core.data.flow) and ``flow_conf`` float32 T×1×H×W; entry 0 is zero, as the clip holds no
  frame before it;
- ``edges`` float32 T×1×H×W in {0, 1}: the instance-boundary map (svsgan_core.data.instances.boundary_map)
  of the frame's instance ids and labels, computed on the output grid (after resize, crop and flip;
  ids are resized with nearest neighbour, edges never are); a frame without an instance map (or
  ``with_instances=False``) gets its label map's edges. ``has_instances`` bool T says which frames had one;
- with ``with_instance_ids``: ``instances`` int32 T×H×W, the instance ids on the output grid (the label
  map where the frame has none, so ``boundary_map(labels, instances)`` is still its edges);
- ``sequence`` (name) and ``frame_indices`` (int64 T, positions in the sequence).

``instance_summary`` says once how many frames have instance maps ("instance maps: 120 of 150 frames
(the rest: semantic edges)"); the trainer and ``svsgan eval`` print it.

The trainer grows the clip length (6 -> 12 -> 24 -> 30) with `set_sequence_length`. Sequences are
cut into segments of `segment_length` frames (a long KITTI-360 drive becomes many) and an epoch
draws one clip per segment that is long enough, starting anywhere in it. Randomness (clip start,
crop, flip, scale) comes from (seed, epoch, index) only, so runs and DataLoader workers reproduce.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from .flow import load_flow, resize_flow
from .instances import boundary_map
from .labels import get_label_space, map_labels
from .layouts import Sequence, find_sequences, read_image, read_instances, read_label


@dataclass(frozen=True)
class Augment:
    """Augmentations drawn once per clip and applied to every frame of it."""

    crop: bool = True  # random crop position (else centred)
    flip: bool = True  # horizontal flip with probability 1/2 (flow x negated)
    scale: tuple[float, float] = (1.0, 1.25)  # zoom range on top of the resize that covers the output

    @classmethod
    def from_option(cls, option) -> Augment:
        """True/False, a dict of fields, or an Augment."""
        if isinstance(option, Augment):
            return option
        if option is True:
            return cls()
        if not option:
            return cls(crop=False, flip=False, scale=(1.0, 1.0))
        if isinstance(option, dict):
            unknown = set(option) - {"crop", "flip", "scale"}
            if unknown:
                raise InputError(f"unknown augmentation option(s) {sorted(unknown)}; use crop, flip, scale")
            values = dict(option)
            if "scale" in values:
                values["scale"] = tuple(float(s) for s in values["scale"])
            return cls(**values)
        raise InputError(f"augment must be true/false or a mapping, got {option!r}")


class SequenceClipDataset(Dataset):
    """Clips from a list of sequences (svsgan_core.data.layouts.Sequence) of any layout."""

    def __init__(self, sequences: list[Sequence], size: tuple[int, int], seq_len: int,
                 label_space: str = "cityscapes", augment=False, with_flow: bool = False,
                 segment_length: int = 30, random_clips: bool = True, seed: int = 0,
                 with_instances: bool = True, with_instance_ids: bool = False):
        """`size` is the output (height, width); `label_space` the model's space, labels are mapped to it.
        `with_instances`: read the frames' instance maps for ``edges`` (False: label edges only, no reads);
        `with_instance_ids`: also return the ids themselves (``instances``), as evaluation needs them."""
        if not sequences:
            raise InputError("dataset has no sequences")
        self.sequences = sequences
        self.height, self.width = (int(v) for v in size)
        if self.height < 1 or self.width < 1:
            raise InputError(f"output size must be positive, got {size}")
        self.label_space = get_label_space(label_space).name
        self.augment = Augment.from_option(augment)
        self.with_flow = with_flow
        self.with_instances = bool(with_instances)
        self.with_instance_ids = bool(with_instance_ids)
        if self.with_instance_ids and not self.with_instances:
            raise InputError("with_instance_ids needs with_instances")
        self.total_frames = sum(len(seq) for seq in sequences)
        self.instance_frames = sum(f.instance is not None for seq in sequences for f in seq.frames)
        self.segment_length = int(segment_length)
        self.random_clips = random_clips
        self.seed = int(seed)
        self.epoch = 0
        self._segments = [(s, start) for s, seq in enumerate(sequences)
                          for start in range(0, len(seq), self.segment_length)]
        self.seq_len = 0
        self.set_sequence_length(seq_len)

    @property
    def instance_summary(self) -> str:
        """One line on where the boundary channel comes from, for the trainer's and eval's logs."""
        if not self.with_instances:
            return f"instance maps: not read (with_instances off): semantic edges for all {self.total_frames} frames"
        if self.instance_frames == self.total_frames:
            return f"instance maps: all {self.total_frames} frames"
        rest = "the rest: semantic edges" if self.instance_frames else "semantic edges only"
        return f"instance maps: {self.instance_frames} of {self.total_frames} frames ({rest})"

    # --- schedule hooks ---

    def set_sequence_length(self, n: int) -> None:
        """Clip length from now on; segments shorter than it are left out."""
        n = int(n)
        if n < 1:
            raise InputError(f"sequence length must be at least 1, got {n}")
        usable = [(s, start) for s, start in self._segments if start + n <= len(self.sequences[s])]
        if not usable:
            longest = max(len(seq) for seq in self.sequences)
            raise InputError(f"no sequence has {n} frames (the longest has {longest}); lower the sequence length")
        self.seq_len = n
        self._usable = usable

    def set_epoch(self, epoch: int) -> None:
        """New epoch, new clip starts and augmentations (still reproducible)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._usable)

    # --- items ---

    def __getitem__(self, index: int) -> dict:
        s, segment_start = self._usable[index]
        sequence = self.sequences[s]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        last_start = min(segment_start + self.segment_length, len(sequence) - self.seq_len + 1) - 1
        start = int(rng.integers(segment_start, last_start + 1)) if self.random_clips else segment_start
        indices = list(range(start, start + self.seq_len))

        first = sequence.frames[indices[0]]
        image = read_image(first.image)
        geometry = self._geometry(image.shape[1], image.shape[0], rng)
        images = np.empty((self.seq_len, 3, self.height, self.width), np.float32)
        labels = np.empty((self.seq_len, self.height, self.width), np.int64)
        flow = np.zeros((self.seq_len, 2, self.height, self.width), np.float32) if self.with_flow else None
        conf = np.zeros((self.seq_len, 1, self.height, self.width), np.float32) if self.with_flow else None
        edges = np.empty((self.seq_len, 1, self.height, self.width), np.float32)
        has_instances = np.zeros(self.seq_len, bool)
        ids = np.empty((self.seq_len, self.height, self.width), np.int32) if self.with_instance_ids else None
        for t, i in enumerate(indices):
            frame = sequence.frames[i]
            if t > 0:
                image = read_image(frame.image)
            if image.shape[:2] != geometry.source:
                raise InputError(f"{frame.image} is {image.shape[1]}x{image.shape[0]} but {first.image} is "
                                 f"{geometry.source[1]}x{geometry.source[0]}: frames of a sequence share one size")
            label = read_label(frame.label)
            if label.shape != image.shape[:2]:
                raise InputError(f"label map {frame.label} is {label.shape[1]}x{label.shape[0]} but its image "
                                 f"{frame.image} is {image.shape[1]}x{image.shape[0]}")
            images[t] = geometry.image(image).transpose(2, 0, 1) * np.float32(1 / 127.5) - 1
            labels[t] = self._to_model_space(geometry.label(label), sequence, frame.label)
            instances = None
            if self.with_instances and frame.instance is not None:
                instances = read_instances(frame.instance)
                if instances.shape != label.shape:
                    raise InputError(f"instance map {frame.instance} is {instances.shape[1]}x{instances.shape[0]} but "
                                     f"its label map {frame.label} is {label.shape[1]}x{label.shape[0]}")
                instances = geometry.label(instances)
                has_instances[t] = True
            edges[t, 0] = boundary_map(labels[t], instances)
            if ids is not None:
                ids[t] = labels[t] if instances is None else instances
            if self.with_flow and t > 0:
                f, c = load_flow(frame.flow)
                f, c = geometry.flow(f, c)
                flow[t] = f.transpose(2, 0, 1)
                conf[t, 0] = c
        item = {"images": torch.from_numpy(images), "labels": torch.from_numpy(labels),
                "edges": torch.from_numpy(edges), "has_instances": torch.from_numpy(has_instances),
                "sequence": sequence.name, "frame_indices": torch.tensor(indices, dtype=torch.int64)}
        if ids is not None:
            item["instances"] = torch.from_numpy(ids)
        if self.with_flow:
            item["flow"] = torch.from_numpy(flow)
            item["flow_conf"] = torch.from_numpy(conf)
        return item

    def _geometry(self, width: int, height: int, rng: np.random.Generator) -> _ClipGeometry:
        aug = self.augment
        scale = max(self.width / width, self.height / height)
        if aug.scale != (1.0, 1.0):
            scale *= float(rng.uniform(*aug.scale))
        scaled = (max(self.width, math.ceil(width * scale - 1e-6)), max(self.height, math.ceil(height * scale - 1e-6)))
        spare_x, spare_y = scaled[0] - self.width, scaled[1] - self.height
        if aug.crop:
            x0, y0 = int(rng.integers(0, spare_x + 1)), int(rng.integers(0, spare_y + 1))
        else:
            x0, y0 = spare_x // 2, spare_y // 2
        flip = bool(aug.flip and rng.random() < 0.5)
        return _ClipGeometry((height, width), scaled, (x0, y0), (self.width, self.height), flip)

    def _to_model_space(self, label: np.ndarray, sequence: Sequence, path: Path) -> np.ndarray:
        try:
            return map_labels(label, sequence.label_space, self.label_space)
        except InputError as exc:
            raise InputError(f"label map {path}: {exc}") from None


@dataclass(frozen=True)
class _ClipGeometry:
    """One resize + crop + flip, the same for every frame (and flow field) of a clip."""

    source: tuple[int, int]  # (height, width) of the stored frames
    scaled: tuple[int, int]  # (width, height) after the resize
    offset: tuple[int, int]  # crop origin (x, y) in the resized frame
    out: tuple[int, int]  # (width, height)
    flip: bool

    def _crop(self, array: np.ndarray) -> np.ndarray:
        x0, y0 = self.offset
        array = array[y0: y0 + self.out[1], x0: x0 + self.out[0]]
        return array[:, ::-1] if self.flip else array

    def image(self, rgb: np.ndarray) -> np.ndarray:
        shrink = self.scaled[0] < rgb.shape[1]
        resized = cv2.resize(rgb, self.scaled, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return self._crop(resized).astype(np.float32)

    def label(self, ids: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._crop(cv2.resize(ids, self.scaled, interpolation=cv2.INTER_NEAREST)))

    def flow(self, flow: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flow, conf = resize_flow(flow, conf, self.scaled)
        flow, conf = self._crop(flow), self._crop(conf)
        if self.flip:
            flow = flow * np.array([-1.0, 1.0], np.float32)
        return flow, conf


# --------------------------------------------------------------------------------------------------
# One class per layout


class SequenceFolderDataset(SequenceClipDataset):
    """The generic layout: <root>/<sequence>/images|labels[/flow], label space from <root>/dataset.yaml."""

    def __init__(self, root, size, seq_len, label_space: str = "cityscapes", augment=False,
                 sequence_names: list[str] | None = None, **options):
        super().__init__(find_sequences("folder", Path(root), sequence_names), size, seq_len, label_space, augment,
                         **options)


class CarlaRecordingDataset(SequenceClipDataset):
    """A CARLA recording in the generic layout (as `svsgan extract` writes it): labels are CARLA tags
    (dataset.yaml ``label_space: carla`` or ``carla_legacy``), mapped to the model's space."""

    def __init__(self, root, size, seq_len, label_space: str = "cityscapes", augment=False,
                 sequence_names: list[str] | None = None, **options):
        super().__init__(find_sequences("carla", Path(root), sequence_names), size, seq_len, label_space, augment,
                         **options)


class CityscapesSequenceDataset(SequenceClipDataset):
    """Cityscapes leftImg8bit_sequence (30-frame snippets) with per-frame pseudo-labels beside it."""

    def __init__(self, root, size, seq_len, label_space: str = "cityscapes", augment=False, split: str = "train",
                 label_root=None, label_suffix: str = "labelTrainIds", label_source_space: str = "cityscapes",
                 flow_root=None, instance_root=None, instance_suffix: str | None = None,
                 sequence_names: list[str] | None = None, **options):
        sequences = find_sequences("cityscapes", Path(root), sequence_names, split=split, label_root=label_root,
                                   label_suffix=label_suffix, label_space=label_source_space, flow_root=flow_root,
                                   instance_root=instance_root, instance_suffix=instance_suffix)
        super().__init__(sequences, size, seq_len, label_space, augment, **options)


class Kitti360Dataset(SequenceClipDataset):
    """KITTI-360 perspective camera with 2D semantics; long drives are split into clips."""

    def __init__(self, root, size, seq_len, label_space: str = "cityscapes", augment=False, split: str | None = None,
                 drives: list[str] | None = None, camera: str = "image_00", flow_root=None,
                 sequence_names: list[str] | None = None, **options):
        sequences = find_sequences("kitti360", Path(root), sequence_names, split=split, drives=drives, camera=camera,
                                   flow_root=flow_root)
        super().__init__(sequences, size, seq_len, label_space, augment, **options)


class Vid2VidDataset(SequenceClipDataset):
    """NVIDIA vid2vid's layout (<split>_A labels, <split>_B frames, <split>_inst instances), as many users
    already hold Cityscapes sequences; labels are Cityscapes labelIds unless `label_source_space` says else."""

    def __init__(self, root, size, seq_len, label_space: str = "cityscapes", augment=False, split: str = "train",
                 label_source_space: str = "cityscapes_ids", flow_root=None,
                 sequence_names: list[str] | None = None, **options):
        sequences = find_sequences("vid2vid", Path(root), sequence_names, split=split,
                                   label_space=label_source_space, flow_root=flow_root)
        super().__init__(sequences, size, seq_len, label_space, augment, **options)


DATASETS = {
    "folder": SequenceFolderDataset,
    "synthetic": SequenceFolderDataset,  # what `svsgan make-synthetic` writes
    "carla": CarlaRecordingDataset,
    "cityscapes": CityscapesSequenceDataset,
    "kitti360": Kitti360Dataset,
    "vid2vid": Vid2VidDataset,
}


def build_dataset(kind: str, root, **options) -> SequenceClipDataset:
    """The dataset a training config names: `kind` is one of DATASETS, `options` its constructor arguments
    (size=(height, width), seq_len, label_space, augment, with_flow, split, seed, ...)."""
    try:
        cls = DATASETS[kind]
    except KeyError:
        raise InputError(f"unknown dataset kind {kind!r}; choose from {', '.join(DATASETS)}") from None
    accepted = {name for c in (cls, SequenceClipDataset) for name, p in inspect.signature(c.__init__).parameters.items()
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self", "root", "sequences"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InputError(f"dataset {kind!r} has no option(s) {', '.join(unknown)}; it takes {', '.join(sorted(accepted))}")
    return cls(root, **options)
