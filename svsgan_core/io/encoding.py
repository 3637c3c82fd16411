"""Colour and ROS-encoding decoding: label images as cameras and CARLA draw them -> class ids.

The label spaces and the mappings between them are the method's (``svsgan_core.data.labels``);
this module turns pixels (palette colours, CARLA raw tags, mono id images) into those ids, and ids
back into palette colours, with the palette's colours written down once. Instance images (CARLA's
instance camera, mono id images) become instance ids here too (``decode_instances``).
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from ..data.labels import (
    LABEL_SPACES,
    MAPPINGS,
    RGB,
    LabelSpace,
    SpaceLike,
    carla_space_for_version,
    check_labels,
    get_label_space,
    map_labels,
    mapping_table,
)
from ..data.instances import carla_instance_ids, carla_instance_key
from ..errors import InputError

# ---------------------------------------------------------------------------------------------
# palettes


def _pack(rgb: RGB) -> int:
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]


@functools.lru_cache(maxsize=32)
def _palette_lut(s: LabelSpace) -> np.ndarray:
    """id -> colour as little-endian BGRA words, so a gather plus one cvtColor gives contiguous RGB."""
    lut = np.zeros((256, 4), np.uint8)
    for i in range(256):
        if i < s.num_classes or i == s.ignore_index:
            r, g, b = s.color_of(i)
            lut[i] = (b, g, r, 255)
    lut = lut.view("<u4")[:, 0].copy()
    lut.setflags(write=False)
    return lut


def encode_palette(ids: np.ndarray, space: SpaceLike) -> np.ndarray:
    """Colour a label map with the space's palette: HxW ids -> HxWx3 uint8 RGB."""
    s = get_label_space(space)
    ids = check_labels(ids, s)
    if ids.ndim != 2:
        raise InputError(f"encode_palette: expected an HxW label map, got shape {ids.shape}")
    bgra = _palette_lut(s).take(ids).view(np.uint8).reshape(ids.shape + (4,))
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB)


class _ColorTable:
    """Colour -> id through a 2**24-entry uint8 table: one gather per pixel (about 1 ms at
    1024x512), where a sorted search costs tens of ms. Unknown colours hold a sentinel id."""

    def __init__(self, colors: dict[int, int]):
        used = set(colors.values())
        self.sentinel = next(v for v in range(255, -1, -1) if v not in used)
        self.lut = np.full(1 << 24, self.sentinel, np.uint8)
        keys = np.fromiter(colors.keys(), np.int64, len(colors))
        self.lut[keys] = np.fromiter(colors.values(), np.uint8, len(colors))
        self.lut.setflags(write=False)

    def __call__(self, packed: np.ndarray, what: str) -> np.ndarray:
        out = self.lut.take(packed)
        bad = out == self.sentinel
        if bad.any():
            unknown = np.unique(packed[bad])
            examples = ", ".join(f"({k >> 16 & 255},{k >> 8 & 255},{k & 255})" for k in unknown[:5].tolist())
            raise InputError(
                f"{what}: {int(bad.sum())} pixels have colours outside the palette "
                f"({len(unknown)} distinct), e.g. RGB {examples}"
            )
        return out


def _space_colors(space: LabelSpace) -> dict[int, int]:
    """Packed colour -> id; where ids share a colour (Cityscapes void ids, pole/polegroup) the
    lowest id wins."""
    colors: dict[int, int] = {}
    for i, c in enumerate(space.colors):
        colors.setdefault(_pack(c), i)
    if space.ignore_index is not None:
        colors.setdefault(_pack(space.ignore_color), space.ignore_index)
    return colors


@functools.lru_cache(maxsize=8)
def _space_color_table(space: LabelSpace) -> _ColorTable:
    return _ColorTable(_space_colors(space))


def carla_palette_colors() -> dict[int, int]:
    """Packed RGB -> CARLA 0.9.14+ tag, accepting the colours of both CARLA versions.

    The two palettes agree wherever they share a colour; legacy fence (100,40,40) and legacy
    terrain (145,170,100) are added so palette input decodes without knowing the version.
    """
    carla, legacy = LABEL_SPACES["carla"], LABEL_SPACES["carla_legacy"]
    to_new = MAPPINGS[("carla_legacy", "carla")]
    colors = _space_colors(carla)
    for old_tag, c in enumerate(legacy.colors):
        new_tag = colors.setdefault(_pack(c), to_new[old_tag])
        if new_tag != to_new[old_tag]:
            raise AssertionError(f"CARLA palettes disagree on colour {c}")
    return colors


@functools.lru_cache(maxsize=8)
def _carla_palette_table(target: str) -> _ColorTable:
    table = mapping_table("carla", target)
    return _ColorTable({k: table[tag] for k, tag in carla_palette_colors().items()})


_TO_BGRA = {
    "rgb": cv2.COLOR_RGB2BGRA,
    "bgr": cv2.COLOR_BGR2BGRA,
    "rgba": cv2.COLOR_RGBA2BGRA,
}


def _check_color_image(image: np.ndarray, channels: int, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"{what}: colour image must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != channels:
        raise InputError(f"{what}: expected an HxWx{channels} image, got shape {image.shape}")
    if image.size == 0:
        raise InputError(f"{what}: empty image (shape {image.shape})")
    return image


def pack_colors(image: np.ndarray, order: str = "rgb", what: str = "image") -> np.ndarray:
    """HxWx3/4 uint8 in channel ``order`` (rgb, bgr, rgba, bgra) -> HxW uint32 0xRRGGBB; alpha ignored."""
    order = order.lower()
    if order not in ("rgb", "bgr", "rgba", "bgra"):
        raise InputError(f"{what}: unknown channel order {order!r}")
    image = _check_color_image(image, len(order), what)
    if order == "bgra":
        bgra = np.ascontiguousarray(image)
    else:
        bgra = cv2.cvtColor(image, _TO_BGRA[order])
    packed = bgra.view("<u4").reshape(bgra.shape[:2])
    if order == "bgra":
        return packed & np.uint32(0xFFFFFF)
    packed &= np.uint32(0xFFFFFF)
    return packed


def decode_palette(rgb: np.ndarray, space: SpaceLike) -> np.ndarray:
    """HxWx3 uint8 RGB palette image -> HxW uint8 ids of ``space``; unknown colours raise."""
    s = get_label_space(space)
    what = f"decode_palette ({s.name})"
    return _space_color_table(s)(pack_colors(rgb, "rgb", what), what)


def decode_carla_palette(image: np.ndarray, order: str = "rgb", target: SpaceLike = "carla") -> np.ndarray:
    """CARLA CityScapesPalette image (either CARLA version) -> ids in ``target`` (default 0.9.14+ tags)."""
    t = get_label_space(target)
    what = f"CARLA palette -> {t.name}"
    return _carla_palette_table(t.name)(pack_colors(image, order, what), what)


# ---------------------------------------------------------------------------------------------
# decoding ROS images


_COLOR_ORDERS = {"rgb8": "rgb", "bgr8": "bgr", "rgba8": "rgba", "bgra8": "bgra", "8uc3": "bgr", "8uc4": "bgra"}
_ID_DTYPES = {"mono8": np.uint8, "8uc1": np.uint8, "mono16": np.uint16, "16uc1": np.uint16}


def _id_image(array: np.ndarray, dtype: type, ros_encoding: str, what: str) -> np.ndarray:
    """A single-channel id image (HxW or HxWx1) of the dtype its ROS encoding promises, as HxW."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise InputError(f"{what}: expected a single-channel HxW image, got shape {array.shape}")
    if array.dtype != dtype:
        raise InputError(f"{what}: {ros_encoding} needs dtype {np.dtype(dtype)}, got {array.dtype}")
    return array


class LabelDecoder:
    """Turns a segmentation image, as a ROS topic carries it, into ids of the model's label space.

    encoding:
      - ``"ids"``: mono8/8UC1/mono16/16UC1 class ids in ``source_space`` (default: the target).
      - ``"carla_palette"``: CityScapesPalette colours (carla-ros-bridge, bgra8/rgba8/rgb8/bgr8);
        decoded without knowing the CARLA version.
      - ``"carla_raw"``: the CARLA tag in the red channel, numbered per ``carla_version``.
    8UC3/8UC4 are taken in OpenCV's BGR/BGRA order.
    """

    ENCODINGS = ("ids", "carla_palette", "carla_raw")

    def __init__(
        self,
        encoding: str,
        target_space: SpaceLike = "cityscapes",
        source_space: SpaceLike | None = None,
        carla_version: str = "0.9.14",
    ):
        if encoding not in self.ENCODINGS:
            raise InputError(f"unknown label encoding {encoding!r}; valid: {', '.join(self.ENCODINGS)}")
        self.encoding = encoding
        self.target = get_label_space(target_space)
        if encoding == "ids":
            self.source = get_label_space(source_space if source_space is not None else self.target)
        elif encoding == "carla_raw":
            self.source = get_label_space(carla_space_for_version(carla_version))
        else:
            self.source = LABEL_SPACES["carla"]
        if encoding != "ids" and source_space is not None and get_label_space(source_space) != self.source:
            raise InputError(
                f"source_space {get_label_space(source_space).name!r} conflicts with encoding {encoding!r} "
                f"(which reads {self.source.name!r}); for carla_raw set carla_version instead"
            )
        mapping_table(self.source, self.target)
        if encoding == "carla_palette":
            _carla_palette_table(self.target.name)

    def __repr__(self) -> str:
        return f"LabelDecoder({self.encoding!r}, target={self.target.name!r}, source={self.source.name!r})"

    def decode(self, array: np.ndarray, ros_encoding: str) -> np.ndarray:
        """Image as numpy (channel order of ``ros_encoding``) -> HxW uint8 ids of the target space."""
        enc = str(ros_encoding).strip().lower()
        array = np.asarray(array)
        what = f"label image ({self.encoding}, {ros_encoding})"
        if array.size == 0:
            raise InputError(f"{what}: empty image (shape {array.shape})")
        if self.encoding == "ids":
            if enc not in _ID_DTYPES:
                raise InputError(
                    f"{what}: class-id images must be mono8, 8UC1, mono16 or 16UC1, got {ros_encoding!r}"
                )
            return map_labels(_id_image(array, _ID_DTYPES[enc], ros_encoding, what), self.source, self.target)
        if enc not in _COLOR_ORDERS:
            raise InputError(
                f"{what}: {self.encoding} needs a colour image (bgra8, rgba8, bgr8, rgb8), got {ros_encoding!r}"
            )
        order = _COLOR_ORDERS[enc]
        array = _check_color_image(array, len(order), what)
        if self.encoding == "carla_raw":
            tags = array[:, :, order.index("r")]
            try:
                return map_labels(tags, self.source, self.target)
            except InputError as e:
                raise InputError(f"{e} (colour images need encoding='carla_palette')") from None
        return _carla_palette_table(self.target.name)(pack_colors(array, order, what), what)


# ---------------------------------------------------------------------------------------------
# instance images

_INSTANCE_ID_DTYPES = {"mono8": np.uint8, "8uc1": np.uint8, "mono16": np.uint16, "16uc1": np.uint16,
                       "32sc1": np.int32}


def decode_instances(array: np.ndarray, ros_encoding: str) -> np.ndarray:
    """An instance image as a ROS topic carries it -> HxW int32 ids, equal exactly where pixels
    belong to one object (what an instance-boundary map needs; ``svsgan_core.data.instances``).

      - ``bgra8``/``rgba8``/``bgr8``/``rgb8`` (8UC3/8UC4 as BGR/BGRA): CARLA's instance camera; the id
        is ``tag << 16 | object id`` (``carla_instance_ids``), so two objects of different classes
        that share CARLA's 16-bit id stay apart and a class boundary is an instance boundary too.
      - ``mono8``/``8UC1``, ``mono16``/``16UC1``, ``32SC1``: ids as they are (vid2vid's 8-bit
        ``train_inst`` with 255 for stuff, Cityscapes' 16-bit ``*_instanceIds.png`` with labelId
        for stuff and labelId * 1000 + k for objects, a panoptic segmenter's 32-bit segment ids).
    """
    enc = str(ros_encoding).strip().lower()
    array = np.asarray(array)
    what = f"instance image ({ros_encoding})"
    if array.size == 0:
        raise InputError(f"{what}: empty image (shape {array.shape})")
    if enc in _COLOR_ORDERS:
        return carla_instance_key(*carla_instance_ids(array, _COLOR_ORDERS[enc]))
    if enc not in _INSTANCE_ID_DTYPES:
        raise InputError(
            f"{what}: instance images must be CARLA's bgra8 (or rgba8, bgr8, rgb8) or mono8, 8UC1, mono16, "
            f"16UC1, 32SC1 ids, got {ros_encoding!r}"
        )
    return _id_image(array, _INSTANCE_ID_DTYPES[enc], ros_encoding, what).astype(np.int32)
