"""Stopping a run cleanly: SIGINT and SIGTERM ask the loop to write a checkpoint and stop."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopRequest:
    """Records the first SIGINT or SIGTERM for the loop to act on; a second SIGINT stops at once."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
