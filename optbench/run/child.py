"""One child process running one RunSpec, seen from the parent.

The child (`python -m optbench.run.worker SPEC RESULT [--serve]`) reports over a pipe in
the messages of `run/protocol.py`. Its log goes to OUT/logs/, its RunResult to RESULT.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optbench.results.schema import RunResult
from optbench.run.lifeline import PARENT_PID_ENV, STOPPED_EXIT
from optbench.run.protocol import CACHE_DIR_ENV, CLOSED, PHASE, STATUS_FD_ENV, TEMP_PREFIX
from optbench.run.recipe import RunSpec

KILL_GRACE_S = 5.0


class Child:
    def __init__(self, spec: RunSpec, log_path: Path, cache: Path,
                 on_phase: Callable[[str], None], serve: bool = False) -> None:
        self.spec = spec
        self.log_path = log_path
        self.serve = serve
        self.phase = "starting"
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.started = time.monotonic()
        self._tmp = tempfile.TemporaryDirectory(prefix=TEMP_PREFIX)
        tmp = Path(self._tmp.name)
        spec_path, self.result_path = tmp / "spec.json", tmp / "result.json"
        spec_path.write_text(json.dumps(spec.to_dict()))
        read_fd, write_fd = os.pipe()
        # PCI_BUS_ID makes CUDA number GPUs as NVML does, so cuda:0 is the metered GPU
        env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", **os.environ,
               STATUS_FD_ENV: str(write_fd), CACHE_DIR_ENV: str(cache),
               PARENT_PID_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", "optbench.run.worker", str(spec_path), str(self.result_path)]
        # its own session: a Ctrl-C in the terminal reaches the parent only, which stops
        # the child and says what it kept; the child watches for the parent's death itself
        # (run/lifeline.py)
        with log_path.open("x") as log_file:
            self.proc = subprocess.Popen(
                argv + (["--serve"] if serve else []),
                stdin=subprocess.PIPE if serve else subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, pass_fds=(write_fd,), env=env,
                start_new_session=True, text=True)
        os.close(write_fd)
        self._on_phase = on_phase
        self._reader = threading.Thread(target=self._read, args=(read_fd,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as stream:
            for line in stream:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if PHASE in message:
                    self.phase = message[PHASE]
                    self._on_phase(self.phase)
                else:
                    self.messages.put(message)
        self.messages.put({CLOSED: True})

    def remaining_s(self) -> float:
        return self.spec.measure.timeout_s - (time.monotonic() - self.started)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, key: str) -> dict[str, Any] | None:
        """The next message carrying `key`, or None if the child ended or ran out of time."""
        try:
            message = self.messages.get(timeout=max(self.remaining_s(), 0.01))
        except queue.Empty:
            return None
        return message if key in message else None

    def wait(self) -> RunResult:
        """Wait for the end (within the spec's timeout) and read or explain its result."""
        timed_out = False
        try:
            self.proc.wait(timeout=max(self.remaining_s(), 0.01))
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
        self._reader.join(timeout=2)
        try:
            return self._result(timed_out)
        finally:
            self._tmp.cleanup()

    def close(self) -> None:
        """Stop the child if it still runs and remove its temporary directory (on an
        interrupted sweep: nothing of it is recorded)."""
        if self.proc.poll() is None:
            self.kill()
        self._reader.join(timeout=2)
        self._tmp.cleanup()

    def kill(self) -> None:
        """SIGTERM the child's process group, then SIGKILL what is left after a grace period."""
        for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    @property
    def wall_s(self) -> float:
        return time.monotonic() - self.started

    def _result(self, timed_out: bool) -> RunResult:
        timeout_s = self.spec.measure.timeout_s
        if timed_out:
            return RunResult("failed", f"timed out after {timeout_s:g} s during '{self.phase}' "
                                       f"(raise measure.timeout_s; log: {self.log_path})")
        if self.result_path.is_file():
            return RunResult.from_dict(json.loads(self.result_path.read_text()))
        code = self.proc.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            # SIGKILL cannot be told apart: a user's kill -9, the out-of-memory killer, ...
            hint = (" (sent by a user's or another process's kill -9, or by the kernel's "
                    "out-of-memory killer: check `dmesg` or the system journal for an "
                    "oom-kill line)") if name == "SIGKILL" else ""
            return RunResult("failed", f"child process killed by {name}{hint} during "
                                       f"'{self.phase}' (log: {self.log_path})")
        if code == STOPPED_EXIT:
            return RunResult("failed", f"child process stopped by a signal during "
                                       f"'{self.phase}': {last_line(self.log_path)} "
                                       f"(log: {self.log_path})")
        return RunResult("failed", f"child process exited with code {code} during "
                                   f"'{self.phase}': {last_line(self.log_path)} "
                                   f"(log: {self.log_path})")


def last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"
