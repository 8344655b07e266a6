"""A clean stop on SIGINT/SIGTERM: the first signal asks the training loop to stop after its step."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

LOGGER = logging.getLogger(__name__)


class StopRequest:
    """What a SIGINT/SIGTERM during a training run asked for: ``signal_name`` is set when one came."""

    def __init__(self) -> None:
        self.signal_name: str | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Turn the first SIGINT/SIGTERM into a :class:`StopRequest` (the loop stops after its step and
    checkpoints); the handlers that were there before come back at once, so a second signal acts as
    usual (KeyboardInterrupt, termination). Outside the main thread nothing is installed."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def handle(signum: int, _frame: Any) -> None:
        request.signal_name = signal.Signals(signum).name
        restore()
        LOGGER.warning("%s: stopping after this step and writing the checkpoint (send it again to stop at once)",
                       request.signal_name)

    for signum in previous:
        signal.signal(signum, handle)
    try:
        yield request
    finally:
        restore()


__all__ = ["StopRequest", "stop_on_signals"]
