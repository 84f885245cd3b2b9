"""Turn SIGINT/SIGTERM into a request the training loop honours at the next step boundary."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """`signum` is set once a stop signal arrived; the loop saves a checkpoint and exits."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextmanager
def stop_on_signals(*, repeat_interrupts: bool = True) -> Iterator[StopRequest]:
    """Within the block the first stop signal only sets the request; a second one interrupts at once
    (with `repeat_interrupts`; else further signals are ignored, the request stands).

    Signal handlers can only be installed from the main thread; elsewhere the
    request simply never fires.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        if request.requested:
            if repeat_interrupts:
                raise KeyboardInterrupt
            return
        request.signum = signum

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
