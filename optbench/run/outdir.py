"""One sweep at a time per output directory, and log files that never collide.

Two sweeps into one store would measure at the same time on the same machine, each
spoiling the other's energy figures (every trial `contended`). The sweep holds an
advisory lock on OUT/.optbench.lock (`flock`: released by the kernel however the process
ends, `kill -9` included, so a crash never leaves a stale lock); a second sweep is refused
at once with the holder's pid. Readers (report, export, recommend) take no lock.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from pathlib import Path
from types import TracebackType

from optbench.errors import OptbenchError

LOCK_NAME = ".optbench.lock"
_sequence = itertools.count(1)


class OutputBusy(OptbenchError):
    """Another sweep is writing to the same output directory."""


class OutputLock:
    """Exclusive use of an output directory for one sweep (a context manager)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        import fcntl  # POSIX; optbench's children and signals are POSIX too

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputBusy(
                f"another optbench sweep (pid {holder}) is writing to {self.path.parent}: "
                "two sweeps at once would spoil each other's energy figures; wait for it "
                "to finish, or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def log_path(logs: Path, key: str, label: str) -> Path:
    """A new log file name: time, configuration, and this process's pid and sequence
    number, so concurrent or same-second runs never share (or overwrite) a log."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:48]
    return logs / f"{stamp}-{key}-{name}-{os.getpid()}.{next(_sequence)}.log"
