"""Label spaces, their palettes and the mappings between them: the one place they are defined.

Everything that speaks of class ids (the ROS node, bag conversion, datasets, metrics, the model's
input) takes them from here, so a class, a colour or a tag number is written down once; turning
pixels into ids (palette colours, CARLA raw tags, ROS encodings) is I/O: ``svsgan_core.io.encoding``.

Spaces (see ``get_label_space``):

- ``cityscapes``: the 19 Cityscapes trainIds 0..18, ignore 255 (drawn black).
- ``cityscapes_ids``: the Cityscapes labelIds 0..33 as stored in ``*_labelIds.png``. The 35th
  label, *license plate* (id -1), cannot be stored in a uint8 image and the official
  ``json2labelImg`` never draws it, so plate pixels carry the vehicle beneath them (car, 26); it is
  not part of this space. ``ignore_index`` is 0 (*unlabeled*, what annotation leaves behind); the
  other void labelIds (1..6, 9, 10, 14..16, 18, 29, 30) stay valid classes here and become
  ignore (255) only when mapped to ``cityscapes`` trainIds.
- ``carla``: CARLA 0.9.14+ semantic tags 0..29 (no ignore: tag 0 *unlabeled* is a class); tag 29
  *rock* is CARLA 0.10's (Unreal Engine 5) addition, which 0.9.x servers never draw.
- ``carla_legacy``: CARLA 0.9.13 and older, tags 0..22.
- ``kitti360``: KITTI-360 2D semantic ids 0..44 (``data_2d_semantics/.../semantic/*.png``): the
  Cityscapes labelIds 0..33 plus eleven KITTI-360 classes; ``ignore_index`` 0 as in ``cityscapes_ids``.

Mappings are derived from two name tables (``CARLA_TO_CITYSCAPES`` and ``CARLA_LEGACY_TO_CARLA``)
plus the Cityscapes label table, so the trainId and labelId views can never disagree.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Union

import numpy as np

from ..errors import InputError

RGB = tuple[int, int, int]

# Cityscapes labels (cityscapesScripts' labels.py): name, labelId, trainId, colour.
_CITYSCAPES_LABELS: tuple[tuple[str, int, int, RGB], ...] = (
    ("unlabeled", 0, 255, (0, 0, 0)),
    ("ego vehicle", 1, 255, (0, 0, 0)),
    ("rectification border", 2, 255, (0, 0, 0)),
    ("out of roi", 3, 255, (0, 0, 0)),
    ("static", 4, 255, (0, 0, 0)),
    ("dynamic", 5, 255, (111, 74, 0)),
    ("ground", 6, 255, (81, 0, 81)),
    ("road", 7, 0, (128, 64, 128)),
    ("sidewalk", 8, 1, (244, 35, 232)),
    ("parking", 9, 255, (250, 170, 160)),
    ("rail track", 10, 255, (230, 150, 140)),
    ("building", 11, 2, (70, 70, 70)),
    ("wall", 12, 3, (102, 102, 156)),
    ("fence", 13, 4, (190, 153, 153)),
    ("guard rail", 14, 255, (180, 165, 180)),
    ("bridge", 15, 255, (150, 100, 100)),
    ("tunnel", 16, 255, (150, 120, 90)),
    ("pole", 17, 5, (153, 153, 153)),
    ("polegroup", 18, 255, (153, 153, 153)),
    ("traffic light", 19, 6, (250, 170, 30)),
    ("traffic sign", 20, 7, (220, 220, 0)),
    ("vegetation", 21, 8, (107, 142, 35)),
    ("terrain", 22, 9, (152, 251, 152)),
    ("sky", 23, 10, (70, 130, 180)),
    ("person", 24, 11, (220, 20, 60)),
    ("rider", 25, 12, (255, 0, 0)),
    ("car", 26, 13, (0, 0, 142)),
    ("truck", 27, 14, (0, 0, 70)),
    ("bus", 28, 15, (0, 60, 100)),
    ("caravan", 29, 255, (0, 0, 90)),
    ("trailer", 30, 255, (0, 0, 110)),
    ("train", 31, 16, (0, 80, 100)),
    ("motorcycle", 32, 17, (0, 0, 230)),
    ("bicycle", 33, 18, (119, 11, 32)),
)

# KITTI-360 ids beyond the Cityscapes labelIds (kitti360Scripts' labels.py): name, id, the Cityscapes
# label it counts as (its trainId follows from that label; "unlabeled" = ignore), colour.
_KITTI360_EXTRA_LABELS: tuple[tuple[str, int, str, RGB], ...] = (
    ("garage", 34, "building", (64, 128, 128)),
    ("gate", 35, "fence", (190, 153, 153)),
    ("stop", 36, "unlabeled", (150, 120, 90)),
    ("smallpole", 37, "pole", (153, 153, 153)),
    ("lamp", 38, "unlabeled", (0, 64, 64)),
    ("trash bin", 39, "unlabeled", (0, 128, 192)),
    ("vending machine", 40, "unlabeled", (128, 64, 0)),
    ("box", 41, "unlabeled", (64, 64, 128)),
    ("unknown construction", 42, "unlabeled", (102, 0, 0)),
    ("unknown vehicle", 43, "unlabeled", (51, 0, 51)),
    ("unknown object", 44, "unlabeled", (32, 32, 32)),
)

# CARLA CityScapesPalette (read from the palette table compiled into the carla wheels' libcarla): tag = position.
# Tag 29 and its colour come from CARLA 0.10's (UE5) LibCarla/source/carla/image/CityScapesPalette.h.
_CARLA_TAGS: tuple[tuple[str, RGB], ...] = (
    ("unlabeled", (0, 0, 0)),
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("pedestrian", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
    ("static", (110, 190, 160)),
    ("dynamic", (170, 120, 50)),
    ("other", (55, 90, 80)),
    ("water", (45, 60, 150)),
    ("road line", (157, 234, 50)),
    ("ground", (81, 0, 81)),
    ("bridge", (150, 100, 100)),
    ("rail track", (230, 150, 140)),
    ("guard rail", (180, 165, 180)),
    ("rock", (180, 130, 70)),
)

_CARLA_LEGACY_TAGS: tuple[tuple[str, RGB], ...] = (
    ("unlabeled", (0, 0, 0)),
    ("building", (70, 70, 70)),
    ("fence", (100, 40, 40)),
    ("other", (55, 90, 80)),
    ("pedestrian", (220, 20, 60)),
    ("pole", (153, 153, 153)),
    ("road line", (157, 234, 50)),
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("vegetation", (107, 142, 35)),
    ("vehicles", (0, 0, 142)),
    ("wall", (102, 102, 156)),
    ("traffic sign", (220, 220, 0)),
    ("sky", (70, 130, 180)),
    ("ground", (81, 0, 81)),
    ("bridge", (150, 100, 100)),
    ("rail track", (230, 150, 140)),
    ("guard rail", (180, 165, 180)),
    ("traffic light", (250, 170, 30)),
    ("static", (110, 190, 160)),
    ("dynamic", (170, 120, 50)),
    ("water", (45, 60, 150)),
    ("terrain", (145, 170, 100)),
)

#: CARLA class name -> Cityscapes label name (both numberings). A class without a Cityscapes
#: trainId gets ignore (255) in ``cityscapes`` but keeps its labelId where Cityscapes has one;
#: classes Cityscapes has no label for at all (other, water) become *unlabeled*.
CARLA_TO_CITYSCAPES: dict[str, str] = {
    "unlabeled": "unlabeled",
    "road": "road",
    "road line": "road",
    "sidewalk": "sidewalk",
    "building": "building",
    "wall": "wall",
    "fence": "fence",
    "pole": "pole",
    "traffic light": "traffic light",
    "traffic sign": "traffic sign",
    "vegetation": "vegetation",
    "terrain": "terrain",
    "sky": "sky",
    "pedestrian": "person",
    "rider": "rider",
    "car": "car",
    "vehicles": "car",
    "truck": "truck",
    "bus": "bus",
    "train": "train",
    "motorcycle": "motorcycle",
    "bicycle": "bicycle",
    "static": "static",
    "dynamic": "dynamic",
    "other": "unlabeled",
    "water": "unlabeled",
    "ground": "ground",
    "bridge": "bridge",
    "rail track": "rail track",
    "guard rail": "guard rail",
    # CARLA 0.10 tags its rock and stone meshes (Tagger folders "Rock", "Stone") 29: natural ground-level
    # stuff that is not driven on, which Cityscapes annotates as terrain (docs/labels.md says why not ignore).
    "rock": "terrain",
}

#: Legacy CARLA class names that were renamed in 0.9.14 (all others keep their name).
CARLA_LEGACY_TO_CARLA: dict[str, str] = {"vehicles": "car"}


@dataclass(frozen=True)
class LabelSpace:
    """A set of class ids with names and an RGB colour each; ids are positions in ``class_names``.

    ``ignore_index`` is the id meaning "no label" (drawn in ``ignore_color``); it may lie outside
    ``0..num_classes-1`` (Cityscapes trainIds use 255) or be one of the classes.
    """

    name: str
    class_names: tuple[str, ...]
    colors: tuple[RGB, ...]
    ignore_index: int | None = None
    ignore_color: RGB = (0, 0, 0)
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.colors):
            raise ValueError(f"label space {self.name}: {len(self.class_names)} names, {len(self.colors)} colours")
        if not 0 < len(self.class_names) <= 256:
            raise ValueError(f"label space {self.name}: 1..256 classes, so ids fit uint8 label maps")
        if self.ignore_index is not None and not 0 <= self.ignore_index <= 255:
            raise ValueError(f"label space {self.name}: ignore_index must fit uint8")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def valid_ids(self) -> tuple[int, ...]:
        """Every id a label map in this space may contain (classes plus an out-of-range ignore)."""
        ids = tuple(range(self.num_classes))
        if self.ignore_index is not None and self.ignore_index >= self.num_classes:
            ids += (self.ignore_index,)
        return ids

    def index(self, class_name: str) -> int:
        try:
            return self.class_names.index(class_name)
        except ValueError:
            raise InputError(f"label space {self.name!r} has no class {class_name!r}") from None

    def color_of(self, class_id: int) -> RGB:
        if class_id == self.ignore_index and class_id >= self.num_classes:
            return self.ignore_color
        return self.colors[class_id]


_TRAIN = sorted((t, n, c) for n, _, t, c in _CITYSCAPES_LABELS if t != 255)

LABEL_SPACES: dict[str, LabelSpace] = {
    s.name: s
    for s in (
        LabelSpace(
            "cityscapes",
            tuple(n for _, n, _ in _TRAIN),
            tuple(c for _, _, c in _TRAIN),
            ignore_index=255,
            description="Cityscapes trainIds 0..18, ignore 255",
        ),
        LabelSpace(
            "cityscapes_ids",
            tuple(n for n, _, _, _ in _CITYSCAPES_LABELS),
            tuple(c for _, _, _, c in _CITYSCAPES_LABELS),
            ignore_index=0,
            description="Cityscapes labelIds 0..33 (*_labelIds.png), license plate not representable",
        ),
        LabelSpace(
            "carla",
            tuple(n for n, _ in _CARLA_TAGS),
            tuple(c for _, c in _CARLA_TAGS),
            description="CARLA 0.9.14+ semantic tags 0..29 (29 rock: CARLA 0.10)",
        ),
        LabelSpace(
            "carla_legacy",
            tuple(n for n, _ in _CARLA_LEGACY_TAGS),
            tuple(c for _, c in _CARLA_LEGACY_TAGS),
            description="CARLA 0.9.13 and older semantic tags 0..22",
        ),
        LabelSpace(
            "kitti360",
            tuple(n for n, _, _, _ in _CITYSCAPES_LABELS) + tuple(n for n, _, _, _ in _KITTI360_EXTRA_LABELS),
            tuple(c for _, _, _, c in _CITYSCAPES_LABELS) + tuple(c for _, _, _, c in _KITTI360_EXTRA_LABELS),
            ignore_index=0,
            description="KITTI-360 2D semantic ids 0..44 (Cityscapes labelIds plus KITTI-360 extras)",
        ),
    )
}

SpaceLike = Union[str, LabelSpace]


def get_label_space(name: SpaceLike, what: str | None = None) -> LabelSpace:
    """Look a label space up by name (a ``LabelSpace`` passes through). ``what`` names where the
    name came from (an option, a parameter) in the error an unknown name gets."""
    if isinstance(name, LabelSpace):
        return name
    try:
        return LABEL_SPACES[name]
    except (KeyError, TypeError):
        said = f"{what} {name!r} is not a label space" if what else f"unknown label space {name!r}"
        raise InputError(f"{said}; valid names: {', '.join(LABEL_SPACES)} (docs/labels.md)") from None


#: classes whose pixels belong to countable objects with instance ids of their own (Cityscapes' hasInstances,
#: CARLA's names for them): a panoptic segmenter's segments of these become instances, the rest is stuff
THING_CLASS_NAMES = frozenset({"person", "pedestrian", "rider", "car", "truck", "bus", "caravan", "trailer", "train",
                               "motorcycle", "bicycle", "vehicles"})


def thing_ids(space: SpaceLike) -> frozenset[int]:
    """The ids of `space` whose class is a thing (THING_CLASS_NAMES)."""
    s = get_label_space(space)
    return frozenset(i for i, n in enumerate(s.class_names) if n in THING_CLASS_NAMES)


def carla_space_for_version(version: str) -> str:
    """``"carla"`` for CARLA 0.9.14 and newer, ``"carla_legacy"`` for older ones or ``"legacy"``."""
    v = str(version).strip().lower()
    if v in ("legacy", "carla_legacy"):
        return "carla_legacy"
    if v in ("carla", "new", "latest"):
        return "carla"
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?.*", v)
    if not m:
        raise InputError(f"cannot read CARLA version {version!r}; use e.g. '0.9.16', '0.9.13' or 'legacy'")
    parts = tuple(int(p or 0) for p in m.groups())
    return "carla" if parts >= (0, 9, 14) else "carla_legacy"


# ---------------------------------------------------------------------------------------------
# mappings


def _cityscapes_label(name: str) -> tuple[int, int]:
    for n, label_id, train_id, _ in _CITYSCAPES_LABELS:
        if n == name:
            return label_id, train_id
    raise KeyError(name)


def _build_mappings() -> dict[tuple[str, str], tuple[int, ...]]:
    tables: dict[tuple[str, str], tuple[int, ...]] = {}
    for carla_name in ("carla", "carla_legacy"):
        names = LABEL_SPACES[carla_name].class_names
        tables[(carla_name, "cityscapes_ids")] = tuple(_cityscapes_label(CARLA_TO_CITYSCAPES[n])[0] for n in names)
        tables[(carla_name, "cityscapes")] = tuple(_cityscapes_label(CARLA_TO_CITYSCAPES[n])[1] for n in names)
    carla = LABEL_SPACES["carla"]
    tables[("carla_legacy", "carla")] = tuple(
        carla.class_names.index(CARLA_LEGACY_TO_CARLA.get(n, n)) for n in LABEL_SPACES["carla_legacy"].class_names
    )
    tables[("cityscapes_ids", "cityscapes")] = tuple(t for _, _, t, _ in _CITYSCAPES_LABELS)
    kitti_as = [n for n, _, _, _ in _CITYSCAPES_LABELS] + [like for _, _, like, _ in _KITTI360_EXTRA_LABELS]
    tables[("kitti360", "cityscapes_ids")] = tuple(_cityscapes_label(n)[0] for n in kitti_as)
    tables[("kitti360", "cityscapes")] = tuple(_cityscapes_label(n)[1] for n in kitti_as)
    train_names = LABEL_SPACES["cityscapes"].class_names
    tables[("cityscapes", "cityscapes_ids")] = tuple(_cityscapes_label(n)[0] for n in train_names)
    return tables


#: (source, target) -> target id for each source id 0..num_classes-1 (identity mappings implied).
MAPPINGS: dict[tuple[str, str], tuple[int, ...]] = _build_mappings()


def mapping_table(source: SpaceLike, target: SpaceLike) -> tuple[int, ...]:
    """Target id for every source class id; raises InputError when no mapping is defined."""
    src, dst = get_label_space(source), get_label_space(target)
    if src.name == dst.name:
        return tuple(range(src.num_classes))
    try:
        return MAPPINGS[(src.name, dst.name)]
    except KeyError:
        known = ", ".join(f"{a}->{b}" for a, b in MAPPINGS)
        raise InputError(f"no label mapping from {src.name!r} to {dst.name!r}; available: {known}") from None


@functools.lru_cache(maxsize=32)
def _mapping_lut(src: LabelSpace, dst: LabelSpace) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid) lookup tables over 0..255 for a source -> target mapping."""
    table = mapping_table(src, dst)
    values = np.zeros(256, np.uint8)
    valid = np.zeros(256, bool)
    values[: len(table)] = table
    valid[: src.num_classes] = True
    if src.ignore_index is not None:
        if dst.ignore_index is None:
            raise InputError(f"{src.name!r} has an ignore index but {dst.name!r} has none to map it to")
        values[src.ignore_index] = dst.ignore_index
        valid[src.ignore_index] = True
    values.setflags(write=False)
    valid.setflags(write=False)
    return values, valid


def _check_int_ids(ids: np.ndarray, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"{what}: class ids must be an integer array, got dtype {ids.dtype}")
    if ids.size == 0:
        raise InputError(f"{what}: empty label map (shape {ids.shape})")
    return ids


def _bad_ids_error(ids: np.ndarray, valid: np.ndarray, space: LabelSpace, what: str) -> InputError:
    values = np.unique(ids)
    inside = (values >= 0) & (values < len(valid))
    bad = values[~inside | ~valid[np.where(inside, values, 0)]]
    shown = ", ".join(str(int(v)) for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
    count = int(np.isin(ids, bad).sum())
    lo, hi = 0, space.num_classes - 1
    extra = f" or {space.ignore_index}" if space.ignore_index is not None and space.ignore_index > hi else ""
    return InputError(
        f"{what}: {count} pixels hold ids outside label space {space.name!r} "
        f"(valid {lo}..{hi}{extra}): {shown}"
    )


def _lookup(ids: np.ndarray, values: np.ndarray, valid: np.ndarray, space: LabelSpace, what: str) -> np.ndarray:
    """Apply a 256-entry table, refusing ids the space does not have."""
    ids = _check_int_ids(ids, what)
    if ids.dtype != np.uint8:
        lo, hi = ids.min(), ids.max()
        if lo < 0 or hi > 255:
            raise _bad_ids_error(ids, valid, space, what)
    if not valid.take(ids).all():
        raise _bad_ids_error(ids, valid, space, what)
    return values.take(ids)


def map_labels(ids: np.ndarray, source: SpaceLike, target: SpaceLike) -> np.ndarray:
    """Map class ids from one label space to another (uint8 result, same shape).

    Ids that the source space does not have raise InputError naming them; the source's ignore
    index becomes the target's.
    """
    src, dst = get_label_space(source), get_label_space(target)
    values, valid = _mapping_lut(src, dst)
    return _lookup(ids, values, valid, src, f"map_labels {src.name}->{dst.name}")


def check_labels(ids: np.ndarray, space: SpaceLike) -> np.ndarray:
    """Return ``ids`` as uint8 after checking every id belongs to ``space``."""
    return map_labels(ids, space, space)
