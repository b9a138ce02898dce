"""The child's end of its parent's life: a worker never outlives the sweep that started it.

A child runs in a session of its own (so a Ctrl-C in the terminal reaches only the parent,
which then stops it and records what it kept). So it must notice by itself when the parent
is gone, however the parent died:
- a parent-death signal (Linux `prctl(PR_SET_PDEATHSIG, SIGTERM)`), where the OS has one;
- its status pipe breaking: the parent held the read end, the kernel closes it at any death
  (`kill -9` included), and a poll on the write end reports POLLERR at once;
- a change of parent pid, checked every second, for an OS with neither.
SIGTERM, SIGHUP and SIGINT (the parent's stop, a user's kill) reach a watcher thread through
`signal.set_wakeup_fd`, so the child stops even while its main thread is inside a long
native call (a compile, a quantization) that delays Python's own signal handlers.
Stopping means: remove the temporary directory the parent made for it (the parent may not
be there to do so), then end the whole process group (the child and anything it started)
with SIGTERM.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import shutil
import signal
import sys
import threading
from pathlib import Path

PARENT_PID_ENV = "OPTBENCH_PARENT_PID"
PR_SET_PDEATHSIG = 1
POLL_S = 1.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
STOPPED_EXIT = 128 + signal.SIGTERM

log = logging.getLogger("optbench.run.lifeline")
_stopping = threading.Lock()
_temp_dir: Path | None = None


def watch(status_fd: int | None, temp_dir: Path | None) -> None:
    """Start watching (call once, from the main thread, before any real work)."""
    global _temp_dir
    _temp_dir = temp_dir
    parent = int(os.environ.get(PARENT_PID_ENV) or 0) or None
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _noted)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    if parent is not None:
        _parent_death_signal()
        if os.getppid() != parent:  # the parent died before the signal was armed
            stop("the parent process is gone")
    threading.Thread(target=_watch, args=(status_fd, wake_read, parent),
                     name="optbench-lifeline", daemon=True).start()


def stop(reason: str) -> None:
    """Clean up and end this process group now; never returns. SIGTERM to the group ends
    what this child started; the child itself only notes it (its handler is a no-op) and
    exits with 143, the shell's code for "ended by SIGTERM"."""
    with _stopping:
        log.warning("stopping: %s", reason)
        for handler in logging.getLogger().handlers:
            handler.flush()
        if _temp_dir is not None:
            shutil.rmtree(_temp_dir, ignore_errors=True)
        try:
            if os.getpgrp() == os.getpid():
                os.killpg(os.getpid(), signal.SIGTERM)
        except OSError:
            pass
        os._exit(STOPPED_EXIT)


def _noted(signum: int, frame: object) -> None:
    """Python's own handler: nothing to do, the watcher thread already has the signal."""


def _watch(status_fd: int | None, wake_fd: int, parent: int | None) -> None:
    poller = select.poll()
    poller.register(wake_fd, select.POLLIN)
    if status_fd is not None:
        poller.register(status_fd, 0)  # POLLERR / POLLHUP are always reported
    while True:
        for fd, _ in poller.poll(POLL_S * 1000):
            if fd == wake_fd:
                data = os.read(wake_fd, 16)
                names = ", ".join(signal.Signals(b).name for b in data if b in
                                  {int(s) for s in STOP_SIGNALS}) or "a signal"
                stop(f"received {names}")
            else:
                stop("the status pipe to the parent broke (the parent is gone)")
        if parent is not None and os.getppid() != parent:
            stop("the parent process is gone")


def _parent_death_signal() -> None:
    """Ask Linux for SIGTERM when the parent dies; elsewhere the pipe and pid checks do."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass
