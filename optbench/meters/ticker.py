"""A background thread that calls `step()` at an adaptive period, for counters that wrap.

Tests call `step()` themselves and never start the thread. An exception in the thread is
kept and re-raised in the main thread at the next window edge (`check()`), never lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Ticker:
    def __init__(self, step: Callable[[], None], period_s: Callable[[], float],
                 name: str = "optbench-meter-tick") -> None:
        self._step = step
        self._period_s = period_s
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s()):
            try:
                self._step()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                self._error = exc
                return

    def check(self) -> None:
        """Re-raise an exception the background thread died of."""
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"meter background thread failed: {error}") from error

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
