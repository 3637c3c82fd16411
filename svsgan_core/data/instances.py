"""Instance-boundary maps: where one object ends and the next begins.

A semantic map cannot separate two cars parked bumper to bumper: both are "car". pix2pixHD, vid2vid
and SPADE therefore give their networks a binary boundary map beside the one-hot labels, computed
from the instance ids. These are the method's functions for it; turning instance images (CARLA's
instance camera, mono id images) into ids is I/O (``svsgan_core.io.encoding.decode_instances``).

Both work on numpy arrays and on torch tensors alike, with any leading (batch, time) axes: only
slicing, ``!=`` and ``|`` are used.
"""
from __future__ import annotations

from typing import Any

from ..errors import InputError


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
