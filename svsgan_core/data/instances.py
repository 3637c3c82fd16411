"""Instance-boundary maps: where one object ends and the next begins.

A semantic map cannot separate two cars parked bumper to bumper: both are "car". pix2pixHD, vid2vid
and SPADE therefore give their networks a binary boundary map beside the one-hot labels, computed
from the instance ids. These are the method's functions for it. Turning a ROS instance image into
ids is I/O (``svsgan_core.io.encoding.decode_instances``); CARLA's instance-camera layout (tag in R,
object id in G and B) is unpacked here, once, because instance map *files* use it too (a CARLA
recording's instance camera in a dataset, ``svsgan_core.data.layouts.read_instances``) and the
method may not import ``io/``.

Both work on numpy arrays and on torch tensors alike, with any leading (batch, time) axes: only
slicing, ``!=`` and ``|`` are used.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

#: ids a CARLA-layout colour image can hold: 8 bits in R above the 16 of G (low byte) and B (high byte)
MAX_COLOUR_ID = (1 << 24) - 1


def carla_instance_ids(image: np.ndarray, order: str = "bgra") -> tuple[np.ndarray, np.ndarray]:
    """CARLA's instance-segmentation camera image -> (HxW uint8 tags, HxW uint16 object ids).

    ``sensor.camera.instance_segmentation`` writes the semantic tag into R and the low and high byte
    of the object's 16-bit id into G and B (ATagger::GetActorLabelColor in CARLA's server; CARLA 0.10
    documents the same layout for its path-traced twin): object id = G + 256 * B. ``carla.Image``
    and CARLA's native ROS 2 publisher carry it as BGRA; a PNG OpenCV reads is BGR(A).
    """
    order = order.lower()
    what = f"CARLA instance image ({order})"
    if order not in ("rgb", "bgr", "rgba", "bgra"):
        raise InputError(f"{what}: unknown channel order {order!r}")
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"{what}: colour image must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != len(order):
        raise InputError(f"{what}: expected an HxWx{len(order)} image, got shape {image.shape}")
    if image.size == 0:
        raise InputError(f"{what}: empty image (shape {image.shape})")
    r, g, b = (image[:, :, order.index(c)] for c in "rgb")
    return np.ascontiguousarray(r), g.astype(np.uint16) | (b.astype(np.uint16) << 8)


def carla_instance_key(tags: np.ndarray, object_ids: np.ndarray) -> np.ndarray:
    """(tags, object ids) -> HxW int32 ``tag << 16 | object id``: two objects of different classes that
    share CARLA's 16-bit id stay apart, and a class boundary is an instance boundary too."""
    return (tags.astype(np.int32) << 16) | object_ids.astype(np.int32)


def instance_colour_image(ids: np.ndarray) -> np.ndarray:
    """HxW ids 0..2**24-1 -> HxWx3 uint8 RGB in CARLA's instance-camera layout (R = bits 16..23,
    G = bits 0..7, B = bits 8..15), so ``carla_instance_key(*carla_instance_ids(rgb, "rgb"))`` gives
    the ids back exactly; for CARLA's own ``tag << 16 | id`` keys it is the camera's image itself."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise InputError(f"instance ids must be an HxW map, got shape {ids.shape}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) > MAX_COLOUR_ID):
        raise InputError(f"instance ids {int(ids.min())}..{int(ids.max())} do not fit a colour instance image "
                         f"(0..{MAX_COLOUR_ID})")
    ids = ids.astype(np.uint32)
    return np.stack([(ids >> 16) & 255, ids & 255, (ids >> 8) & 255], -1).astype(np.uint8)


def thing_instance_ids(labels: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Cityscapes' instanceIds convention from a label map and a panoptic segmenter's object segments
    (0: no object, k > 0: the k-th): ``label * 1000 + k`` on an object's pixels, the label elsewhere, so
    stuff of one class is one region and every object its own."""
    labels, segments = np.asarray(labels), np.asarray(segments)
    if labels.shape != segments.shape:
        raise InputError(f"labels {labels.shape} and segments {segments.shape} differ in shape")
    return np.where(segments > 0, labels.astype(np.int32) * 1000 + segments, labels).astype(np.int32)


def compact_ids(ids: np.ndarray, return_values: bool = False) -> Any:
    """Ids renumbered 0..n-1 in their sorted order: equal stays equal, different stays different (all a
    boundary map reads), so ids of any range fit a 16-bit file when a frame has at most 65536 of them.
    With `return_values`, (the renumbered map, the sorted distinct ids): ``values[renumbered]`` gives the
    ids back, as a resize of the renumbered map needs."""
    unique, inverse = np.unique(np.asarray(ids), return_inverse=True)
    compact = inverse.reshape(np.shape(ids)).astype(np.int32 if len(unique) > 65536 else np.uint16)
    return (compact, unique) if return_values else compact


def instance_edges(ids: Any) -> Any:
    """...xHxW ids -> ...xHxW bool: a pixel is an edge when one of its four neighbours has another id.

    pix2pixHD's boundary map: both pixels on either side of a change are marked, so a boundary is two
    pixels wide and does not depend on which side is scanned first. Ids are compared only, never
    interpreted: any integer labelling works (CARLA's tag << 16 | object id, Cityscapes' instanceIds,
    a semantic map).
    """
    if ids.ndim < 2:
        raise InputError(f"instance_edges needs an HxW (or ...xHxW) id map, got {ids.ndim} dimension(s)")
    edges = ids != ids  # all False, same shape and array type (numpy or torch) as ids
    across = ids[..., :, 1:] != ids[..., :, :-1]  # a change between a pixel and its right neighbour
    edges[..., :, 1:] |= across
    edges[..., :, :-1] |= across
    down = ids[..., 1:, :] != ids[..., :-1, :]  # a change between a pixel and the one below
    edges[..., 1:, :] |= down
    edges[..., :-1, :] |= down
    return edges


def boundary_map(labels: Any, instances: Any = None) -> Any:
    """The instance-boundary channel for one frame (or a batch): edges of the instance ids combined with
    edges of the semantic map; without instance ids, the semantic map's edges alone.

    The semantic edges are kept even when instances are given because not every instance map carries
    the classes of stuff (vid2vid's ``train_inst`` draws all stuff 255), so the channel means the same
    whatever the source: every class boundary, plus the boundaries between touching objects where
    the frame has instance ids. Touching same-class objects merge only in the fallback.
    """
    edges = instance_edges(labels)
    if instances is None:
        return edges
    if tuple(instances.shape) != tuple(labels.shape):
        raise InputError(f"instance ids {tuple(instances.shape)} and labels {tuple(labels.shape)} differ in shape")
    return edges | instance_edges(instances)
