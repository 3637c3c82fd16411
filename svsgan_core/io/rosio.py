"""sensor_msgs/Image and CompressedImage <-> numpy: the one conversion module for the node and bags.

Duck-typed: any object with the message's attributes works, so the same code reads rclpy messages
(``data`` is an ``array.array('B')``), rosbags message dataclasses (``data`` is a numpy uint8
array) and plain test doubles. Nothing here imports rclpy or a ROS message package.

Arrays keep the channel order of their ROS encoding (an ``rgb8`` image gives RGB, ``bgra8`` gives
BGRA); colour conversion is the caller's choice, not a hidden step.
"""

from __future__ import annotations

import array
import dataclasses
import sys
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from .encoding import LabelDecoder, decode_instances

# encoding -> (dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "8UC4": (np.dtype(np.uint8), 4),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32SC1": (np.dtype(np.int32), 1),  # instance ids (a panoptic segmenter's); never a label image
}
_CANONICAL = {k.lower(): k for k in ENCODINGS}
_HOST_BIG_ENDIAN = sys.byteorder == "big"


def _encoding_info(encoding: Any, what: str) -> tuple[str, np.dtype, int]:
    key = _CANONICAL.get(str(encoding).strip().lower())
    if key is None:
        raise InputError(f"{what}: unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    dtype, channels = ENCODINGS[key]
    return key, dtype, channels


def _as_bytes_array(data: Any, what: str) -> np.ndarray:
    """The message's data field as a flat uint8 array, without copying where the buffer allows."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise InputError(f"{what}: data must be uint8, got {data.dtype}")
        return data.reshape(-1)
    try:
        return np.frombuffer(data, np.uint8)
    except TypeError:
        return np.asarray(data, np.uint8).reshape(-1)


def image_to_numpy(msg: Any) -> np.ndarray:
    """sensor_msgs/Image-like -> a fresh, contiguous, native-endian array (HxW or HxWxC).

    Handles row padding (``step`` > width * bytes per pixel) and big-endian 16-bit data. Data may
    omit the padding after the last row; anything shorter raises.
    """
    what = "Image message"
    encoding, dtype, channels = _encoding_info(getattr(msg, "encoding", None), what)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise InputError(f"{what}: zero-size image ({width}x{height}, {encoding})")
    pixel = dtype.itemsize * channels
    row = width * pixel
    if step < row:
        raise InputError(
            f"{what}: step {step} is less than width * bytes per pixel = {width} * {pixel} = {row} ({encoding})"
        )
    data = _as_bytes_array(msg.data, what)
    need = step * (height - 1) + row
    if data.size < need:
        raise InputError(
            f"{what}: data has {data.size} bytes, {width}x{height} {encoding} with step {step} needs {step * height}"
        )
    big = bool(msg.is_bigendian) and dtype.itemsize > 1
    stored = dtype.newbyteorder(">" if big else "<") if dtype.itemsize > 1 else dtype
    view = np.ndarray((height, width, channels), stored, buffer=data, strides=(step, pixel, dtype.itemsize))
    if channels == 1:
        view = view[:, :, 0]
    out = np.empty(view.shape, dtype)
    out[...] = view
    return out


def _check_output_array(image: np.ndarray, encoding: str) -> tuple[str, np.ndarray]:
    what = f"image for {encoding}"
    encoding, dtype, channels = _encoding_info(encoding, what)
    image = np.asarray(image)
    if image.dtype != dtype:
        raise InputError(f"{what}: needs dtype {dtype}, got {image.dtype}")
    shape_ok = image.ndim == 2 and channels == 1 or image.ndim == 3 and image.shape[2] == channels
    if not shape_ok:
        want = "HxW" if channels == 1 else f"HxWx{channels}"
        raise InputError(f"{what}: needs an {want} array, got shape {image.shape}")
    if image.size == 0:
        raise InputError(f"{what}: empty image (shape {image.shape})")
    return encoding, np.ascontiguousarray(image)


def image_fields(image: np.ndarray, encoding: str) -> dict[str, Any]:
    """The Image fields for an array (``data`` as a flat numpy uint8 array, unpadded rows).

    Multi-byte data is written in host byte order with ``is_bigendian`` set to match.
    """
    encoding, image = _check_output_array(image, encoding)
    height, width = image.shape[:2]
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": int(_HOST_BIG_ENDIAN and image.dtype.itemsize > 1),
        "step": image.strides[0],
        "data": image.reshape(-1).view(np.uint8),
    }


def fill_image(msg: Any, image: np.ndarray, encoding: str) -> Any:
    """Set an Image-like message's fields from an array; returns ``msg`` (header is left alone).

    rclpy messages get ``array.array('B')``: their setter stores it as is, where bytes or lists are
    validated element by element when field checks are on (~100 ms per 1024x512 RGB frame).
    rosbags dataclasses get the numpy uint8 array their serializer expects.
    """
    fields = image_fields(image, encoding)
    data = fields.pop("data")
    for name, value in fields.items():
        setattr(msg, name, value)
    if dataclasses.is_dataclass(msg) or isinstance(getattr(msg, "data", None), np.ndarray):
        msg.data = data
    else:
        buf = array.array("B")
        buf.frombytes(data.data)
        msg.data = buf
    return msg


# ---------------------------------------------------------------------------------------------
# CompressedImage

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 64_000_000  # default limit for a compressed image's declared size (64 MP)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def declared_size(data: np.ndarray) -> tuple[int, int] | None:
    """(height, width) a PNG or JPEG declares in its header, read without decoding; None when the
    header cannot be read (the decoder then refuses the data itself)."""
    head = data[:24].tobytes()
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
    if head[:2] != b"\xff\xd8":
        return None
    buf = data.tobytes() if data.size < 1 << 16 else data[: 1 << 20].tobytes()
    i = 2
    while i + 9 <= len(buf):
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7):
            i += 2
            continue
        length = int.from_bytes(buf[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF:
            return int.from_bytes(buf[i + 5 : i + 7], "big"), int.from_bytes(buf[i + 7 : i + 9], "big")
        if marker == 0xDA or length < 2:  # scan data before any frame header
            return None
        i += 2 + length
    return None
_CODECS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg"}


def _parse_format(fmt: str) -> tuple[str | None, str, bool]:
    """image_transport format string -> (original encoding or None, codec, compressedDepth)."""
    text = str(fmt).strip()
    original = None
    rest = text
    if ";" in text:
        original, rest = (p.strip() for p in text.split(";", 1))
        original = original or None
    words = rest.lower().split()
    depth = "compresseddepth" in words
    codec = next((_CODECS[w] for w in words if w in _CODECS), None)
    if codec is None:
        raise InputError(
            f"CompressedImage: unsupported format {fmt!r}; expected png or jpeg "
            "(e.g. 'png', 'bgr8; jpeg compressed bgr8')"
        )
    return original, codec, depth


def _encoding_of(image: np.ndarray) -> str:
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype == np.uint16 and channels == 1:
        return "mono16"
    if image.dtype == np.uint8:
        return {1: "mono8", 3: "bgr8", 4: "bgra8"}[channels]
    raise InputError(f"CompressedImage: decoded an unsupported image ({image.dtype}, {channels} channels)")


_FROM_BGR = {
    ("rgb8", 3): cv2.COLOR_BGR2RGB,
    ("rgb8", 4): cv2.COLOR_BGRA2RGB,
    ("rgba8", 3): cv2.COLOR_BGR2RGBA,
    ("rgba8", 4): cv2.COLOR_BGRA2RGBA,
    ("bgra8", 3): cv2.COLOR_BGR2BGRA,
    ("8UC4", 3): cv2.COLOR_BGR2BGRA,
    ("bgr8", 4): cv2.COLOR_BGRA2BGR,
    ("8UC3", 4): cv2.COLOR_BGRA2BGR,
}


def decode_compressed(msg: Any, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str]:
    """CompressedImage-like -> (array, encoding), restoring the original encoding named in the
    format string the way image_transport's subscriber does (``"rgb8; jpeg compressed bgr8"``
    gives RGB). A bare ``"png"``/``"jpeg"`` gives OpenCV's order: mono8/mono16, bgr8, bgra8.
    16-bit PNG stays 16-bit.

    An image whose header declares more than ``max_pixels`` pixels is refused before decoding: a
    few hundred KB of PNG can declare 16384x16384 (a decompression bomb of gigabytes).
    """
    original, codec, depth = _parse_format(getattr(msg, "format", ""))
    data = _as_bytes_array(msg.data, "CompressedImage")
    if data.size == 0:
        raise InputError(f"CompressedImage: no data (format {msg.format!r})")
    if depth and data[:8].tobytes() != _PNG_SIGNATURE and data[12:20].tobytes() == _PNG_SIGNATURE:
        data = data[12:]  # compressedDepth's ConfigHeader (format enum + 2 depth-quantisation floats)
    size = declared_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise InputError(
            f"CompressedImage: the {codec} header declares {size[1]}x{size[0]} "
            f"({size[0] * size[1] / 1e6:.0f} MP), over the limit of {max_pixels / 1e6:g} MP; not decoded"
        )
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InputError(f"CompressedImage: could not decode {data.size} bytes as {codec} (format {msg.format!r})")
    decoded = _encoding_of(image)
    if original is None:
        return image, decoded
    try:
        target, dtype, channels = _encoding_info(original, "CompressedImage")
    except InputError:
        return image, decoded
    have = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype != dtype:
        return image, decoded
    if have == channels and (have == 1 or target not in ("rgb8", "rgba8")):
        return image, target
    conversion = _FROM_BGR.get((target, have))
    if conversion is None:
        return image, decoded
    return cv2.cvtColor(image, conversion), target


def compressed_to_numpy(msg: Any) -> np.ndarray:
    """CompressedImage-like -> array in the original encoding's channel order (see decode_compressed)."""
    return decode_compressed(msg)[0]


def compress(
    image: np.ndarray, fmt: str = "jpeg", quality: int = 90, encoding: str | None = None, png_level: int = 3
) -> tuple[str, bytes]:
    """Array -> (CompressedImage.format, data), with image_transport's format strings.

    ``encoding`` names the array's channel order; by default mono8/mono16 for HxW, and for colour
    svsgan's convention, RGB(A): ``rgb8``/``rgba8``. Colour is stored as BGR (alpha dropped), as
    image_transport does, so the format reads e.g. ``"rgb8; jpeg compressed bgr8"``; mono images
    give ``"mono8; png compressed "`` (image_transport names no target for mono). ``quality``
    is JPEG's, ``png_level`` (0..9) PNG's zlib level, as image_transport's parameters. JPEG is 8-bit
    and lossy: use PNG for label maps.
    """
    codec = _CODECS.get(str(fmt).strip().lower())
    if codec is None:
        raise InputError(f"compress: unsupported format {fmt!r}; use 'jpeg' or 'png'")
    image = np.asarray(image)
    if encoding is None:
        channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else 0)
        if image.dtype == np.uint16:
            encoding = "mono16"
        else:
            encoding = {1: "mono8", 3: "rgb8", 4: "rgba8"}.get(channels, "mono8")
    encoding, image = _check_output_array(image, encoding)
    dtype, channels = ENCODINGS[encoding]
    if codec == "jpeg" and dtype.itemsize != 1:
        raise InputError(f"compress: JPEG is 8-bit only, cannot store {encoding}; use png")
    if dtype.itemsize > 2:
        raise InputError(f"compress: PNG stores 8 and 16 bits per channel, cannot store {encoding}; publish it raw")
    if codec == "jpeg" and not 1 <= int(quality) <= 100:
        raise InputError(f"compress: quality must be 1..100, got {quality}")
    if channels == 1:
        bgr, target = image, ""
    else:
        to_bgr = {
            "rgb8": cv2.COLOR_RGB2BGR,
            "rgba8": cv2.COLOR_RGBA2BGR,
            "bgra8": cv2.COLOR_BGRA2BGR,
            "8UC4": cv2.COLOR_BGRA2BGR,
        }.get(encoding)
        bgr = cv2.cvtColor(image, to_bgr) if to_bgr is not None else image
        target = "bgr8"
    if codec == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        if not 0 <= int(png_level) <= 9:
            raise InputError(f"compress: png_level must be 0..9, got {png_level}")
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:
        raise InputError(f"compress: OpenCV could not encode {encoding} {image.shape} as {codec}")
    return f"{encoding}; {codec} compressed {target}", buf.tobytes()


def is_compressed(msg: Any) -> bool:
    """CompressedImage has ``format``; Image has ``encoding``."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def message_to_numpy(msg: Any, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str]:
    """Either message kind -> (array, encoding); compressed images over max_pixels are refused."""
    if is_compressed(msg):
        return decode_compressed(msg, max_pixels)
    image = image_to_numpy(msg)
    return image, _encoding_info(msg.encoding, "Image message")[0]


def label_image(msg: Any, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str]:
    """message_to_numpy for a segmentation message: a JPEG (by its format or its bytes) is refused, as
    JPEG is lossy and changes class ids and palette colours at every edge."""
    if is_compressed(msg):
        _, codec, _ = _parse_format(getattr(msg, "format", ""))
        if codec == "jpeg" or _as_bytes_array(msg.data, "CompressedImage")[:2].tobytes() == b"\xff\xd8":
            raise InputError("CompressedImage: a JPEG label image; JPEG is lossy and changes class ids and "
                             "palette colours at every edge: record the label topic as png")
    return message_to_numpy(msg, max_pixels)


def labels_from_msg(msg: Any, decoder: LabelDecoder, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Image or CompressedImage carrying a segmentation -> HxW uint8 ids of the decoder's target space."""
    image, encoding = label_image(msg, max_pixels)
    return decoder.decode(image, encoding)


def instances_from_msg(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Image or CompressedImage carrying instance ids (CARLA's instance camera, mono ids) -> HxW int32
    ids (``encoding.decode_instances``); JPEG is refused as for labels."""
    image, encoding = label_image(msg, max_pixels)
    return decode_instances(image, encoding)


_TO_RGB = {
    "rgb8": None,
    "bgr8": cv2.COLOR_BGR2RGB,
    "8UC3": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "8UC4": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
    "8UC1": cv2.COLOR_GRAY2RGB,
}


def rgb_from_msg(msg: Any, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Image or CompressedImage from an 8-bit camera -> HxWx3 uint8 RGB (a reference first frame)."""
    image, encoding = message_to_numpy(msg, max_pixels)
    if encoding not in _TO_RGB:
        raise InputError(f"cannot use a {encoding} image as an RGB frame; expected 8-bit colour or mono8")
    conversion = _TO_RGB[encoding]
    return np.ascontiguousarray(image) if conversion is None else cv2.cvtColor(image, conversion)
