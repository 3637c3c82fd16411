"""The on-disk dataset layouts: finding sequences, reading and writing frames. No torch here.

Every layout is turned into the same thing, a list of `Sequence`s whose `Frame`s name their image,
their label map and where their cached flow lives, so `svsgan prepare-flow` and the torch datasets
share one enumeration. Layouts (docs/datasets.md has the full description):

- ``folder``: the generic layout this project writes (`svsgan make-synthetic`, `svsgan extract`)::

      <root>/dataset.yaml                      label_space: cityscapes | carla | ...
      <root>/<sequence>/images/000000.png      RGB (.png or .jpg)
      <root>/<sequence>/labels/000000.png      single-channel class ids, same stem as the image
      <root>/<sequence>/instances/000000.png   optional instance ids (read_instances), same stem
      <root>/<sequence>/flow/000001.npz        optional, see svsgan_core.data.flow

- ``cityscapes``: ``leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` with
  per-frame (pseudo-)labels in a tree that mirrors it (``*_instanceIds.png`` instance maps beside
  them); each run of consecutive frames (a 30-frame snippet) is one sequence.
- ``kitti360``: ``data_2d_raw/<drive>/image_00/data_rect/<frame>.png`` with
  ``data_2d_semantics/train/<drive>/image_00/semantic/<frame>.png`` (and ``instance/<frame>.png``);
  each run of consecutive labelled frames of a drive is one sequence (long drives are cut into clips
  by the datasets).
- ``vid2vid``: NVIDIA vid2vid's layout (its ``datasets/Cityscapes`` example): ``<split>_A/<seq>/*.png``
  label maps (Cityscapes labelIds), ``<split>_B/<seq>/*.jpg|png`` frames, ``<split>_inst/<seq>/*.png``
  instance maps, file names matching across the folders; one sequence per ``<seq>`` folder.

Every layout takes ``sequence_names=[...]`` to keep only those sequences (a held-out split of one folder).
Instance maps are optional per frame: ``Frame.instance`` is None where a frame has none.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..errors import InputError
from .instances import MAX_COLOUR_ID, carla_instance_ids, carla_instance_key, compact_ids, instance_colour_image
from .labels import get_label_space

DATASET_FILE = "dataset.yaml"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
LAYOUTS = ("folder", "carla", "cityscapes", "kitti360", "vid2vid")


@dataclass(frozen=True)
class Frame:
    image: Path
    label: Path
    flow: Path  # where this frame's backward flow (to the previous frame of its sequence) is cached
    instance: Path | None = None  # its instance-id map; None when the frame has none


@dataclass
class Sequence:
    name: str
    frames: list[Frame]
    label_space: str  # the space the label files are written in
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)


# --------------------------------------------------------------------------------------------------
# Reading and writing single frames


def read_image(path: Path) -> np.ndarray:
    """H×W×3 uint8 RGB; InputError naming the file when it is missing or cannot be decoded."""
    data = _read_bytes(path, "image")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot decode image {path} (corrupt or not an image file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: Path) -> np.ndarray:
    """H×W uint8 class ids from a single-channel PNG (8 or 16 bit); InputError naming the file otherwise."""
    data = _read_bytes(path, "label map")
    label = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if label is None:
        raise InputError(f"cannot decode label map {path} (corrupt or not an image file)")
    if label.ndim != 2:
        raise InputError(f"label map {path} has {label.shape[2]} channels; label maps are single-channel "
                         f"class-id PNGs (decode palette images with svsgan_core.io.encoding.decode_palette first)")
    if label.dtype != np.uint8:
        if label.max(initial=0) > 255:
            raise InputError(f"label map {path} holds ids above 255 (max {int(label.max())})")
        label = label.astype(np.uint8)
    return label


def read_instances(path: Path) -> np.ndarray:
    """H×W int32 instance ids from an instance map file; InputError naming the file otherwise.

    - single-channel 8 or 16 bit: ids as stored (vid2vid's ``train_inst``, 255 = stuff; Cityscapes'
      and KITTI-360's ``class * 1000 + index`` maps; this project's ``instances/`` files);
    - 3 or 4 channels: CARLA's instance-camera layout, tag in R and the object id in G (low byte) and
      B (high byte), as CARLA's ``image.save_to_disk`` and ``svsgan extract`` write it; the id is
      ``tag << 16 | object id``, as ``svsgan_core.io.encoding.decode_instances`` gives it for the topic.
    Only equality of ids matters downstream (a boundary map), never their values.
    """
    data = _read_bytes(path, "instance map")
    ids = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if ids is None:
        raise InputError(f"cannot decode instance map {path} (corrupt or not an image file)")
    if ids.dtype not in (np.uint8, np.uint16):
        raise InputError(f"instance map {path} holds {ids.dtype} pixels; instance maps are 8- or 16-bit")
    if ids.ndim == 3 and ids.shape[2] in (3, 4):
        if ids.dtype != np.uint8:
            raise InputError(f"instance map {path}: a colour instance map (CARLA's layout) must be 8-bit per channel")
        return carla_instance_key(*carla_instance_ids(ids, "bgr" if ids.shape[2] == 3 else "bgra"))
    if ids.ndim != 2:
        raise InputError(f"instance map {path} has {ids.shape[2]} channels; instance maps are single-channel ids "
                         f"or CARLA's 3/4-channel instance-camera image")
    return ids.astype(np.int32)


def write_instances(path: Path, ids: np.ndarray) -> None:
    """Write H×W instance ids so `read_instances` gives them back: ids 0..65535 as a 16-bit PNG, larger ones
    (CARLA's ``tag << 16 | id``) in CARLA's colour layout, anything else (negative, beyond 24 bits)
    renumbered by `compact_ids`, which keeps every boundary."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"instance map for {path} must be H×W integer ids, got {ids.dtype} {ids.shape}")
    low, high = (int(ids.min()), int(ids.max())) if ids.size else (0, 0)
    if low < 0 or high > MAX_COLOUR_ID:
        ids = compact_ids(ids)
        low, high = 0, int(ids.max(initial=0))
    if high <= 0xFFFF:
        _write_png(path, ids.astype(np.uint16))
    else:
        _write_png(path, cv2.cvtColor(instance_colour_image(ids), cv2.COLOR_RGB2BGR))


def _read_bytes(path: Path, what: str) -> np.ndarray:
    try:
        return np.fromfile(path, np.uint8)
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from None


def write_image(path: Path, rgb: np.ndarray) -> None:
    _write_png(path, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))


def write_label(path: Path, ids: np.ndarray) -> None:
    if ids.dtype != np.uint8 or ids.ndim != 2:
        raise InputError(f"label map for {path} must be H×W uint8 ids, got {ids.dtype} {ids.shape}")
    _write_png(path, ids)


def _write_png(path: Path, array: np.ndarray) -> None:
    """Write atomically, so an interrupted run never leaves a truncated file that looks finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", array)
    if not ok:
        raise InputError(f"cannot encode {path}")
    tmp = path.with_name(path.name + ".tmp")
    data.tofile(tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------
# The generic folder layout


def frame_name(index: int) -> str:
    return f"{index:06d}"


def write_dataset_info(root: Path, label_space: str, **info) -> Path:
    """Write <root>/dataset.yaml; `info` adds free-form fields (source, seeds, carla_version, ...)."""
    get_label_space(label_space)
    root.mkdir(parents=True, exist_ok=True)
    path = root / DATASET_FILE
    text = yaml.safe_dump({"format": "svsgan-sequences", "version": 1, "label_space": label_space, **info},
                          sort_keys=False)
    path.write_text(text)
    return path


def read_dataset_info(root: Path) -> dict:
    path = root / DATASET_FILE
    if not path.is_file():
        raise InputError(f"{path} is missing: a sequence-folder dataset names its label space there "
                         f"(e.g. 'label_space: cityscapes'); see docs/datasets.md")
    try:
        info = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text (UTF-8 YAML) file") from None
    if not isinstance(info, dict) or "label_space" not in info:
        raise InputError(f"{path} must be a mapping with a 'label_space' entry")
    get_label_space(info["label_space"])
    return info


def write_frame(root: Path, sequence: str, index: int, image: np.ndarray, label: np.ndarray,
                instances: np.ndarray | None = None) -> Frame:
    """Write one frame of the generic layout (with its instance ids, when given); returns where its
    files (and its flow) live."""
    frame = folder_frame(root / sequence, frame_name(index), ".png")
    if image.shape[:2] != label.shape[:2]:
        raise InputError(f"{frame.image}: image {image.shape[1]}x{image.shape[0]} and label map "
                         f"{label.shape[1]}x{label.shape[0]} differ in size")
    if instances is not None and np.shape(instances) != label.shape[:2]:
        raise InputError(f"{frame.image}: instance map {np.shape(instances)[::-1]} and label map "
                         f"{label.shape[1]}x{label.shape[0]} differ in size")
    write_image(frame.image, image)
    write_label(frame.label, label)
    if instances is not None:
        frame = replace(frame, instance=folder_instance_path(root / sequence, frame_name(index)))
        write_instances(frame.instance, instances)
    return frame


def folder_frame(sequence_dir: Path, stem: str, image_ext: str, with_instance: bool = False) -> Frame:
    """A frame of the generic layout; `with_instance`: it has an instance map (instances/<stem>.png)."""
    return Frame(sequence_dir / "images" / (stem + image_ext), sequence_dir / "labels" / (stem + ".png"),
                 sequence_dir / "flow" / (stem + ".npz"),
                 folder_instance_path(sequence_dir, stem) if with_instance else None)


def folder_instance_path(sequence_dir: Path, stem: str) -> Path:
    return sequence_dir / "instances" / (stem + ".png")


def folder_sequences(root: Path, expect_space: tuple[str, ...] | None = None) -> list[Sequence]:
    """Sequences of the generic layout: every <root>/<name>/images folder, frames sorted by file name."""
    root = _existing_dir(root)
    info = read_dataset_info(root)
    space = info["label_space"]
    if expect_space is not None and space not in expect_space:
        raise InputError(f"{root / DATASET_FILE} says label_space {space!r}; this loader expects one of "
                         f"{', '.join(expect_space)}")
    sequences = []
    for seq_dir in sorted(p for p in root.iterdir() if (p / "images").is_dir()):
        images = sorted(p for p in (seq_dir / "images").iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise InputError(f"sequence {seq_dir.name} is empty: no images in {seq_dir / 'images'}")
        instances = _png_stems(seq_dir / "instances")
        frames = [folder_frame(seq_dir, p.stem, p.suffix, p.stem in instances) for p in images]
        for frame in frames:
            if not frame.label.is_file():
                raise InputError(f"image {frame.image} has no label map: expected {frame.label}")
        sequences.append(Sequence(seq_dir.name, frames, space, {"root": str(root)}))
    if not sequences:
        raise InputError(f"no sequences found under {root}: expected <root>/<sequence>/images/*.png with "
                         f"labels/ beside it (see docs/datasets.md)")
    return sequences


# --------------------------------------------------------------------------------------------------
# Cityscapes sequence


_CITYSCAPES_NAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)_leftImg8bit$")


def cityscapes_instance_suffix(label_suffix: str) -> str:
    """The instance maps' suffix beside labels of `label_suffix`: gtFine_labelIds -> gtFine_instanceIds
    (the official annotations), anything else (pseudo-labels) -> instanceIds."""
    prefix = label_suffix.split("_")[0] + "_" if "_" in label_suffix else ""
    return f"{prefix}instanceIds"


def cityscapes_sequences(root: Path, split: str = "train", label_root: Path | None = None,
                         label_suffix: str = "labelTrainIds", label_space: str = "cityscapes",
                         flow_root: Path | None = None, instance_root: Path | None = None,
                         instance_suffix: str | None = None) -> list[Sequence]:
    """Cityscapes leftImg8bit_sequence with per-frame labels mirroring it.

    Image:    <root>/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    Label:    <label_root>/<split>/<city>/<city>_<seq>_<frame>_<label_suffix>.png
              (default label_root <root>/pseudo_labels_sequence: e.g. OneFormer trainIds, as in the paper)
    Instance: <instance_root>/<split>/<city>/<city>_<seq>_<frame>_<instance_suffix>.png, optional
              (default instance_root = label_root, suffix from `cityscapes_instance_suffix`: instanceIds,
              gtFine_instanceIds beside gtFine_labelIds); 16-bit labelId * 1000 + k, labelId for stuff
    Flow:     <flow_root>/<split>/<city>/<city>_<seq>_<frame>_flow.npz (default <root>/flow_sequence)
    Consecutive frame numbers of one <city>_<seq> form a sequence (the 30-frame snippets).
    """
    root = _existing_dir(root)
    image_dir = _existing_dir(root / "leftImg8bit_sequence" / split)
    label_root = Path(label_root) if label_root is not None else root / "pseudo_labels_sequence"
    label_dir = _existing_dir(label_root / split, "label folder")
    flow_dir = (Path(flow_root) if flow_root is not None else root / "flow_sequence") / split
    instance_dir = (Path(instance_root) if instance_root is not None else label_root) / split
    instance_suffix = instance_suffix or cityscapes_instance_suffix(label_suffix)
    get_label_space(label_space)
    instance_files: dict[str, set[str]] = {}

    groups: dict[tuple[str, str, str], list[tuple[int, Frame]]] = {}
    for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
        match = _CITYSCAPES_NAME.match(image.stem)
        if match is None:
            continue
        city, seq, number = match["city"], match["seq"], match["frame"]
        stem = f"{city}_{seq}_{number}"
        folder = image.parent.name
        if folder not in instance_files:
            instance_files[folder] = _png_stems(instance_dir / folder)
        instance = f"{stem}_{instance_suffix}"
        frame = Frame(image, label_dir / folder / f"{stem}_{label_suffix}.png",
                      flow_dir / folder / f"{stem}_flow.npz",
                      instance_dir / folder / f"{instance}.png" if instance in instance_files[folder] else None)
        if not frame.label.is_file():
            raise InputError(f"image {image} has no label map: expected {frame.label}")
        groups.setdefault((image.parent.name, city, seq), []).append((int(number), frame))
    sequences = []
    for (folder, city, seq), numbered in sorted(groups.items()):
        for run in _consecutive_runs(numbered):
            first = run[0].image.stem.split("_")[-2]
            sequences.append(Sequence(f"{split}/{city}_{seq}_{first}", run, label_space, {"city": folder}))
    if not sequences:
        raise InputError(f"no sequences found under {image_dir}: expected "
                         f"<city>/<city>_<seq>_<frame>_leftImg8bit.png files")
    return sequences


# --------------------------------------------------------------------------------------------------
# KITTI-360


def kitti360_sequences(root: Path, split: str | None = None, drives: list[str] | None = None,
                       camera: str = "image_00", flow_root: Path | None = None) -> list[Sequence]:
    """KITTI-360 perspective images with their 2D semantic labels (ids of the ``kitti360`` space).

    Image:    <root>/data_2d_raw/<drive>/<camera>/data_rect/<frame>.png
    Label:    <root>/data_2d_semantics/train/<drive>/<camera>/semantic/<frame>.png
    Instance: <root>/data_2d_semantics/train/<drive>/<camera>/instance/<frame>.png, optional
              (16-bit semantic id * 1000 + k, as KITTI-360 ships them)
    Flow:     <flow_root>/<drive>/<camera>/<frame>.npz (default <root>/data_2d_flow)
    `split` "train"/"val" keeps the frames listed in data_2d_semantics/train/2013_05_28_drive_<split>_frames.txt;
    None keeps every labelled frame. Each run of consecutive frame numbers is one sequence.
    """
    root = _existing_dir(root)
    semantics = _existing_dir(root / "data_2d_semantics" / "train")
    raw = _existing_dir(root / "data_2d_raw")
    flow_base = Path(flow_root) if flow_root is not None else root / "data_2d_flow"
    listed = _kitti360_split(semantics, split) if split else None
    drive_names = drives or sorted(p.name for p in semantics.iterdir() if (p / camera / "semantic").is_dir())
    sequences = []
    for drive in drive_names:
        label_dir = _existing_dir(semantics / drive / camera / "semantic", "label folder")
        instance_dir = semantics / drive / camera / "instance"
        instances = _png_stems(instance_dir)
        numbered = []
        for label in sorted(label_dir.glob("*.png")):
            if listed is not None and (drive, label.stem) not in listed:
                continue
            image = raw / drive / camera / "data_rect" / label.name
            if not image.is_file():
                raise InputError(f"label map {label} has no image: expected {image}")
            numbered.append((int(label.stem), Frame(
                image, label, flow_base / drive / camera / f"{label.stem}.npz",
                instance_dir / label.name if label.stem in instances else None)))
        for run in _consecutive_runs(numbered):
            sequences.append(Sequence(f"{drive}/{run[0].label.stem}", run, "kitti360", {"drive": drive}))
    if not sequences:
        where = f"{semantics}/<drive>/{camera}/semantic" + (f" (split {split!r})" if split else "")
        raise InputError(f"no labelled KITTI-360 frames found in {where}")
    return sequences


def _kitti360_split(semantics: Path, split: str) -> set[tuple[str, str]]:
    path = semantics / f"2013_05_28_drive_{split}_frames.txt"
    if not path.is_file():
        raise InputError(f"KITTI-360 split {split!r}: {path} does not exist (use split=None for all labelled frames)")
    listed = set()
    for line in path.read_text().splitlines():
        if line.strip():
            image = Path(line.split()[0])
            listed.add((image.parts[1], image.stem))  # data_2d_raw/<drive>/image_00/data_rect/<frame>.png
    return listed


# --------------------------------------------------------------------------------------------------
# vid2vid


def vid2vid_splits(root: Path) -> list[str]:
    """The splits a vid2vid root holds: every <split> with a <split>_A and a <split>_B folder."""
    return sorted(p.name[:-2] for p in Path(root).glob("*_A") if p.is_dir() and (root / (p.name[:-2] + "_B")).is_dir())


def vid2vid_sequences(root: Path, split: str = "train", label_space: str = "cityscapes_ids",
                      flow_root: Path | None = None) -> list[Sequence]:
    """NVIDIA vid2vid's layout, as it distributes its Cityscapes example.

    Label:    <root>/<split>_A/<seq>/<stem>.png   (label ids of `label_space`: Cityscapes labelIds there)
    Image:    <root>/<split>_B/<seq>/<stem>.jpg|.png
    Instance: <root>/<split>_inst/<seq>/<stem>.png (objects 1..N, 255 stuff; optional)
    Flow:     <flow_root>/<seq>/<stem>.npz (default <root>/<split>_flow: pass flow_root for a read-only root)
    The label maps define the frames, sorted by name; each needs an image of the same stem.
    """
    root = _existing_dir(root)
    label_base = root / f"{split}_A"
    if not label_base.is_dir():
        found = vid2vid_splits(root)
        raise InputError(f"vid2vid split {split!r}: {label_base} does not exist"
                         + (f" (splits here: {', '.join(found)})" if found else ""))
    image_base = _existing_dir(root / f"{split}_B", "image folder")
    instance_base = root / f"{split}_inst"
    flow_base = Path(flow_root) if flow_root is not None else root / f"{split}_flow"
    get_label_space(label_space)
    sequences = []
    for seq_dir in sorted(p for p in label_base.iterdir() if p.is_dir()):
        labels = sorted(p for p in seq_dir.iterdir() if p.suffix.lower() == ".png")
        if not labels:
            continue
        frames = []
        instances = _png_stems(instance_base / seq_dir.name)
        for label in labels:
            image = next((image_base / seq_dir.name / (label.stem + ext) for ext in IMAGE_EXTENSIONS
                          if (image_base / seq_dir.name / (label.stem + ext)).is_file()), None)
            if image is None:
                raise InputError(f"label map {label} has no image: expected "
                                 f"{image_base / seq_dir.name / label.stem}.jpg or .png")
            frames.append(Frame(image, label, flow_base / seq_dir.name / f"{label.stem}.npz",
                                instance_base / seq_dir.name / label.name if label.stem in instances else None))
        sequences.append(Sequence(seq_dir.name, frames, label_space, {"split": split}))
    if not sequences:
        raise InputError(f"no sequences found under {label_base}: expected <seq>/*.png label maps")
    return sequences


# --------------------------------------------------------------------------------------------------


def find_sequences(layout: str, root: Path, sequence_names: list[str] | None = None, **options) -> list[Sequence]:
    """Enumerate a dataset of any layout; `options` are the layout function's keyword arguments.

    `sequence_names` keeps only the sequences of those names (in that order), e.g. a held-out one.
    """
    root = Path(root)
    if layout == "folder":
        found = folder_sequences(root, **options)
    elif layout == "carla":
        found = folder_sequences(root, expect_space=("carla", "carla_legacy"), **options)
    elif layout == "cityscapes":
        found = cityscapes_sequences(root, **options)
    elif layout == "kitti360":
        found = kitti360_sequences(root, **options)
    elif layout == "vid2vid":
        found = vid2vid_sequences(root, **options)
    else:
        raise InputError(f"unknown dataset layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    return select_sequences(found, sequence_names, root)


def select_sequences(found: list[Sequence], names: list[str] | None, root: Path) -> list[Sequence]:
    """The sequences named in `names` (all of them when None); an unknown name is an error naming the known ones."""
    if names is None:
        return found
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    by_name = {seq.name: seq for seq in found}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = list(by_name)
        raise InputError(f"{root}: no sequence named {', '.join(map(repr, missing))}; it has "
                         f"{', '.join(known[:12])}{' ...' if len(known) > 12 else ''}")
    if not names:
        raise InputError("the list of sequences to keep is empty")
    return [by_name[n] for n in dict.fromkeys(names)]


def detect_layout(root: Path) -> str:
    """Guess the layout of a dataset root from its top-level entries."""
    root = _existing_dir(Path(root))
    if (root / "leftImg8bit_sequence").is_dir():
        return "cityscapes"
    if (root / "data_2d_raw").is_dir():
        return "kitti360"
    if (root / DATASET_FILE).is_file():
        return "folder"
    if vid2vid_splits(root):
        return "vid2vid"
    raise InputError(f"cannot tell the layout of {root}: no {DATASET_FILE}, leftImg8bit_sequence/, "
                     f"data_2d_raw/ or <split>_A/ + <split>_B/ in it (see docs/datasets.md)")


def _existing_dir(path: Path, what: str = "dataset path") -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a folder")
    return path


def _png_stems(folder: Path) -> set[str]:
    """Stems of the .png files in `folder` (empty when it does not exist): one listing, not a stat per frame."""
    try:
        return {p.stem for p in folder.iterdir() if p.suffix == ".png"}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _consecutive_runs(numbered: list[tuple[int, Frame]]) -> list[list[Frame]]:
    runs: list[list[Frame]] = []
    previous = None
    for number, frame in sorted(numbered, key=lambda item: item[0]):
        if previous is None or number != previous + 1:
            runs.append([])
        runs[-1].append(frame)
        previous = number
    return runs
