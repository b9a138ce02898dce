"""What the parent and a child say to each other, in one place.

Child -> parent: JSON lines on the status pipe (fd `$OPTBENCH_STATUS_FD`):
`{"phase": ...}` while it works; in serve mode `{"ready": true}` once it is measured up to
its energy trials, then `{"trial": {...}}` after each trial the parent asks for.
Parent -> child (serve mode, on stdin): `trial` or `finish`, one per line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from optbench.results.schema import Trial
from optbench.run import lifeline

STATUS_FD_ENV = "OPTBENCH_STATUS_FD"
CACHE_DIR_ENV = "OPTBENCH_CACHE_DIR"
TEMP_PREFIX = "optbench-"  # the parent's temporary directory for one child (spec, result)
PHASE, READY, TRIAL, CLOSED = "phase", "ready", "trial", "closed"  # message keys
CMD_TRIAL, CMD_FINISH = "trial", "finish"  # parent -> child commands

Send = Callable[[dict[str, Any]], None]
log = logging.getLogger("optbench.run.worker")


def status_sender() -> Send:
    """Messages to the parent over the status pipe (logged only when run by hand)."""
    fd = os.environ.get(STATUS_FD_ENV)

    def send(message: dict[str, Any]) -> None:
        if PHASE in message:
            log.info("phase: %s", message[PHASE])
        if fd:
            try:
                os.write(int(fd), (json.dumps(message) + "\n").encode())
            except BrokenPipeError:  # nobody reads: the parent is gone, so is the point
                lifeline.stop("the status pipe to the parent broke (the parent is gone)")

    return send


class ServedTrials:
    """Serve mode, child side: energy trials on request from the parent."""

    def __init__(self, send: Send, commands: Any = None) -> None:
        self._send = send
        self._commands = commands if commands is not None else sys.stdin

    def ready(self) -> None:
        self._send({READY: True})

    def requests(self) -> Iterator[int]:
        index = 1
        for line in self._commands:
            command = line.strip()
            if command == CMD_FINISH:
                return
            if command != CMD_TRIAL:
                raise ValueError(f"unknown command from the parent: {command!r}")
            yield index
            index += 1

    def send(self, trial: Trial) -> None:
        self._send({TRIAL: trial.to_dict()})
