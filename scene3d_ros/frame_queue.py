"""Hand-over between a fast producer (camera callbacks) and slow consumers (inference workers).

:class:`LatestFrameQueue`: the producer never blocks; a new frame replaces a waiting one (counted
as dropped). Each frame is taken at most once, by one consumer, so a slow network never
re-processes a stale frame and memory stays bounded to one waiting frame. Frames are numbered in
arrival order (:meth:`LatestFrameQueue.get_numbered`).

:class:`PublishOrder`: several consumers finish their frames in any order; it admits a result
for publishing only if that keeps the published stream in time order (see its doc).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class QueueStats:
    """Counts since creation: frames offered, taken by the consumers, and replaced while waiting."""

    offered: int
    taken: int
    dropped: int


class LatestFrameQueue(Generic[T]):
    """Single-slot, keep-latest hand-over. Thread-safe for one or more producers and consumers."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: T | None = None
        self._sequence = 0  # arrival number of the waiting item
        self._has_item = False
        self._closed = False
        self._offered = self._taken = self._dropped = 0

    def put(self, item: T) -> bool:
        """Offer ``item``; returns True when it replaced a frame nobody had taken (a drop)."""
        with self._condition:
            replaced = self._has_item
            self._item, self._has_item = item, True
            self._offered += 1
            self._sequence = self._offered
            self._dropped += int(replaced)
            self._condition.notify()
            return replaced

    def get_numbered(self, timeout: float | None = None) -> tuple[int, T] | None:
        """The newest untaken frame and its arrival number (1 for the first ``put``, increasing),
        waiting up to ``timeout`` seconds; None on timeout or close. Consumers that share the
        queue compare arrival numbers to tell which of their frames came first."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._has_item or self._closed, timeout):
                return None
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            self._taken += 1
            return self._sequence, item

    def get(self, timeout: float | None = None) -> T | None:
        """The newest untaken frame, waiting up to ``timeout`` seconds; None on timeout or close."""
        taken = self.get_numbered(timeout)
        return None if taken is None else taken[1]

    def close(self) -> None:
        """Wake every waiting consumer; later ``get`` calls return what is left, then None."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def stats(self) -> QueueStats:
        with self._condition:
            return QueueStats(self._offered, self._taken, self._dropped)


class PublishOrder:
    """The ordering rule of several inference workers publishing into one stream. Thread-safe.

    A result (its frame's arrival number ``sequence`` and image stamp, nanoseconds) is **late**,
    and must not be published, when the last published result is both newer (a greater stamp) and
    from a frame that arrived later (a greater arrival number): another worker overtook it. With a
    camera whose stamps increase, published stamps then increase too. Where the camera's own
    stamps go back (a frame that arrived later with an older stamp, e.g. a recording played again
    from the start) the result is published, as one worker would publish it; equal stamps are
    never late. With one worker no result is ever late.

    ``with order.publishing(sequence, stamp_ns) as admitted:`` holds the order's lock for the
    block, so the messages of one frame are published together, never interleaved with another
    frame's; ``admitted`` False means the result is late (counted in :attr:`late`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[int, int] | None = None  # (sequence, stamp_ns) of the last admitted result
        self._late = 0

    def _is_late(self, sequence: int, stamp_ns: int) -> bool:
        if self._last is None:
            return False
        last_sequence, last_stamp = self._last
        return sequence < last_sequence and stamp_ns < last_stamp

    @contextlib.contextmanager
    def publishing(self, sequence: int, stamp_ns: int) -> Iterator[bool]:
        """Admit (yield True, record it as the last published) or refuse (yield False, count it)
        the result of frame ``sequence`` stamped ``stamp_ns``, holding the lock for the block."""
        with self._lock:
            if self._is_late(sequence, stamp_ns):
                self._late += 1
                yield False
                return
            self._last = (sequence, stamp_ns)
            yield True

    @property
    def late(self) -> int:
        """Results refused as late since creation."""
        with self._lock:
            return self._late
