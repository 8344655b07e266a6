"""A keep-latest slot between a fast producer (camera callbacks) and one slow consumer (inference).

The producer never blocks: a new frame replaces a waiting one (counted as dropped). The consumer
takes each frame at most once, so a slow network never re-processes a stale frame and memory
stays bounded to one waiting frame.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class QueueStats:
    """Counts since creation: frames offered, taken by the consumer, and replaced while waiting."""

    offered: int
    taken: int
    dropped: int


class LatestFrameQueue(Generic[T]):
    """Single-slot, keep-latest hand-over. Thread-safe for one or more producers and consumers."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: T | None = None
        self._has_item = False
        self._closed = False
        self._offered = self._taken = self._dropped = 0

    def put(self, item: T) -> bool:
        """Offer ``item``; returns True when it replaced a frame nobody had taken (a drop)."""
        with self._condition:
            replaced = self._has_item
            self._item, self._has_item = item, True
            self._offered += 1
            self._dropped += int(replaced)
            self._condition.notify()
            return replaced

    def get(self, timeout: float | None = None) -> T | None:
        """The newest untaken frame, waiting up to ``timeout`` seconds; None on timeout or close."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._has_item or self._closed, timeout):
                return None
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            self._taken += 1
            return item

    def close(self) -> None:
        """Wake every waiting consumer; later ``get`` calls return what is left, then None."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def stats(self) -> QueueStats:
        with self._condition:
            return QueueStats(self._offered, self._taken, self._dropped)
