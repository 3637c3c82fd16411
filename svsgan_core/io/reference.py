"""The RGB camera frame that matches a semantic frame's stamp, read from a bag beside the main pass.

Offline conversion starts each sequence from the camera frame recorded with its first semantic
frame (`--map SOURCE:TARGET:REFERENCE`), as the node does with its `reference_topic`. Bridges publish
the two cameras in either order, so the match may lie before or after the semantic message in bag
order. A `ReferenceCursor` walks the reference topic with its own read-only reader, in step with the
main pass, and keeps only the messages recorded near the current bag time: at most `KEEP` before it
and `KEEP` after it, all within `WINDOW_NS` of bag time. Memory stays bounded on a long bag, and a
looped bag cannot pair a frame with a camera frame from another lap.

A reference message that does not decode is skipped and counted, as the node drops a bad reference
image, and its sequence starts in first-frame mode unless another message matches.

The instance images of `--instances SOURCE=TOPIC` are found the same way, with their own decoder
(`decode=instances_from_msg`) and an exact stamp match (`max_dt_s=0`), as the node pairs them.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from .bags import BagMessage, BagReader
from .rosio import MAX_PIXELS, rgb_from_msg
from .timeline import stamp_to_ns

MAX_DT_S = 0.001  # default stamp tolerance: CARLA stamps the cameras of one tick identically
MAX_MAX_DT_S = 0.5  # a wider tolerance would pair frames of different moments
WINDOW_NS = 500_000_000  # the reference is recorded within 0.5 s of bag time of its semantic frame
KEEP = 8  # messages kept on each side of the current bag time (the node keeps 8 references too)


def check_max_dt(max_dt_s: float) -> int:
    """The stamp tolerance in ns; an InputError outside [0, MAX_MAX_DT_S] s."""
    if not 0 <= max_dt_s <= MAX_MAX_DT_S:  # also refuses nan
        raise InputError(f"the reference stamp tolerance (--reference-max-dt) must be 0 to {MAX_MAX_DT_S:g} seconds, got {max_dt_s}")
    return int(round(max_dt_s * 1e9))


def describe(ref: dict) -> str:
    """How a topic's sequences started, from ConvertResult.references (convert's line, the demo's summary)."""
    text = (f"{ref['from_reference']} started from the camera {ref['topic']} and {ref['first_frame']} in "
            "first-frame mode" + (f" (no usable {ref['topic']} frame within {ref['max_dt_s'] * 1e3:g} ms of "
                                  "its stamp)" if ref["first_frame"] else ""))
    if ref["bad"]:
        text += f"; {ref['bad']} bad reference message(s) skipped, the first: {ref['first_bad']}"
    return text


def describe_instances(counts: dict) -> str:
    """How many frames got their instance ids, from ConvertResult.instances (convert's line)."""
    text = f"{counts['paired']} with instance ids from {counts['topic']}"
    if counts["without"]:
        text += f", {counts['without']} from the labels alone (no instance image of their exact stamp, or a bad one)"
    if counts["bad"]:
        text += f"; {counts['bad']} bad instance image(s) skipped, the first: {counts['first_bad']}"
    return text


@dataclass
class _Entry:
    msg: BagMessage
    stamp: int | None = None  # header stamp, read on first look
    bad: str | None = None  # why it cannot serve, with its position
    counted: bool = False  # its badness is in ReferenceCursor.bad


class ReferenceCursor:
    """Camera frames of `topic` by header stamp (see the module docstring). Owns its reader: close().
    `decode(message, max_pixels)` turns a message into what `image` returns (default: RGB)."""

    def __init__(self, path, topic: str, *, typestore: str | None = None, max_dt_s: float = MAX_DT_S,
                 max_pixels: int = MAX_PIXELS, decode: Callable[[Any, int], np.ndarray] = rgb_from_msg):
        self.topic = topic
        self.max_dt_ns = check_max_dt(max_dt_s)
        self.max_pixels = max_pixels
        self.decode = decode
        self._bag = BagReader(path, typestore)
        self._stream = self._bag.messages([topic])
        self._next: BagMessage | None = None
        self._ended = False
        self._window: collections.deque[_Entry] = collections.deque()
        self.bad = 0  # reference messages skipped because they do not decode
        self.first_bad: str | None = None

    def close(self) -> None:
        self._bag.close()

    def __enter__(self) -> ReferenceCursor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def image(self, stamp_ns: int, bag_time: int, count: bool = True) -> np.ndarray | None:
        """HxWx3 uint8 RGB of the message whose header stamp is nearest `stamp_ns` within the tolerance,
        recorded near `bag_time` (the semantic message's); None when there is none or it does not decode.
        `count`: bad messages seen are counted in `bad` (False: a look for display, not for a sequence)."""
        entry = self._find(stamp_ns, bag_time)
        rgb = None
        if entry is not None:
            try:
                rgb = self.decode(self._bag.decode(entry.msg), self.max_pixels)
            except InputError as exc:
                self._mark_bad(entry, exc)
        if count:  # every message in the window was looked at by this search
            for e in self._window:
                if e.bad is not None and not e.counted:
                    e.counted = True
                    self.bad += 1
                    self.first_bad = self.first_bad or e.bad
        return rgb

    # -- the window -----------------------------------------------------------------------------
    def _find(self, stamp_ns: int, bag_time: int) -> _Entry | None:
        window = self._window
        behind = sum(e.msg.timestamp <= bag_time for e in window)
        while (nxt := self._peek()) is not None and nxt.timestamp <= bag_time:  # catch up, KEEP at a time
            window.append(_Entry(self._take()))
            behind += 1
            if behind > KEEP:
                window.popleft()
                behind -= 1
        while behind and window[0].msg.timestamp < bag_time - WINDOW_NS:
            window.popleft()
            behind -= 1
        best = min(((abs(s - stamp_ns), i) for i, e in enumerate(window)
                    if (s := self._stamp(e)) is not None and abs(s - stamp_ns) <= self.max_dt_ns), default=None)
        if best is not None:
            return window[best[1]]
        ahead = len(window) - behind
        while ahead < KEEP and (nxt := self._peek()) is not None and nxt.timestamp <= bag_time + WINDOW_NS:
            entry = _Entry(self._take())
            window.append(entry)
            ahead += 1
            s = self._stamp(entry)
            if s is not None and abs(s - stamp_ns) <= self.max_dt_ns:
                return entry
        return None

    def _peek(self) -> BagMessage | None:
        if self._next is None and not self._ended:
            self._next = next(self._stream, None)
            self._ended = self._next is None
        return self._next

    def _take(self) -> BagMessage:
        msg, self._next = self._next, None
        return msg

    def _stamp(self, entry: _Entry) -> int | None:
        if entry.stamp is None and entry.bad is None:
            try:
                entry.stamp = stamp_to_ns(self._bag.decode(entry.msg).header.stamp)
            except (InputError, AttributeError) as exc:
                self._mark_bad(entry, exc)
        return entry.stamp

    def _mark_bad(self, entry: _Entry, exc: BaseException) -> None:
        text = str(exc)
        where = self._bag.where(entry.msg)
        entry.bad = text if where in text else f"{where}: {text}"
        entry.stamp = None
