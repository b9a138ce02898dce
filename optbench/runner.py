"""Runs every RunSpec of a recipe in its own child process; the parent alone writes the store.

A crash, hang or out-of-memory kill in one backend becomes a `failed` record with the
reason, and the sweep goes on. `resume` skips specs already `ok` under the same
environment. Progress is reported through a RunnerEvents object (the CLI draws it).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from optbench.backends import BACKENDS
from optbench.cache import cache_root
from optbench.env import env_id, fingerprint, git_state
from optbench.recipe import Recipe, RunSpec
from optbench.results.schema import RunResult
from optbench.results.store import Store, utc_now

log = logging.getLogger(__name__)
KILL_GRACE_S = 5.0


class RunnerEvents(Protocol):
    def started(self, index: int, total: int, spec: RunSpec) -> None: ...
    def phase(self, spec: RunSpec, phase: str) -> None: ...
    def finished(self, spec: RunSpec, run_id: int | None, result: RunResult) -> None: ...


class SilentEvents:
    def started(self, index: int, total: int, spec: RunSpec) -> None:
        log.info("[%d/%d] %s", index + 1, total, spec.label())

    def phase(self, spec: RunSpec, phase: str) -> None:
        log.debug("%s: %s", spec.label(), phase)

    def finished(self, spec: RunSpec, run_id: int | None, result: RunResult) -> None:
        log.info("%s: %s %s", spec.label(), result.status, result.reason or "")


def gpu_visible() -> bool:
    from optbench.meters.inventory import gpu_inventory

    return bool(gpu_inventory().get("devices"))


def resolve_device(requested: str, backend: str, has_gpu: bool) -> str:
    """"auto": CUDA for a backend that runs there when a GPU is visible, else the CPU."""
    if requested != "auto":
        return requested
    cls = BACKENDS.get(backend)
    return "cuda" if has_gpu and "cuda" in cls.precisions else "cpu"


@dataclass
class ChildOutcome:
    result: RunResult
    wall_s: float
    log_path: Path


class Runner:
    def __init__(self, out_dir: Path, events: RunnerEvents | None = None,
                 cache: Path | None = None) -> None:
        self.out_dir = out_dir
        self.events = events or SilentEvents()
        self.cache = cache or cache_root()

    def plan(self, recipe: Recipe) -> list[RunSpec]:
        has_gpu = recipe.device == "auto" and gpu_visible()
        specs = []
        for spec in recipe.expand("cpu"):
            device = resolve_device(recipe.device, spec.backend.name, has_gpu)
            specs.append(RunSpec(**{**spec.__dict__, "device": device}))
        return specs

    def run(self, recipe: Recipe, resume: bool = False) -> list[int]:
        """Run the recipe's sweep; returns the ids of the runs written."""
        specs = self.plan(recipe)
        store = Store.open(self.out_dir)
        try:
            env = fingerprint()
            eid = env_id(env)
            store.put_environment(eid, env)
            sha, dirty = git_state()
            written: list[int] = []
            for index, spec in enumerate(specs):
                self.events.started(index, len(specs), spec)
                if resume and store.has_ok(spec.key(), eid):
                    self.events.finished(spec, None, RunResult("skipped", "resume: already ok"))
                    continue
                started = utc_now()
                outcome = self.run_one(spec)
                run_id = store.add_run(
                    spec.to_dict(), spec.key(), eid, outcome.result, git_sha=sha,
                    git_dirty=dirty, started_at=started, finished_at=utc_now(),
                    wall_s=outcome.wall_s, log_path=str(outcome.log_path))
                written.append(run_id)
                self.events.finished(spec, run_id, outcome.result)
            return written
        finally:
            store.close()

    def run_one(self, spec: RunSpec) -> ChildOutcome:
        """Run one spec in a child process with the spec's timeout."""
        logs = self.out_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        log_path = logs / f"{stamp}-{spec.key()}-{spec.backend.name}-{spec.variant.name}.log"
        self.cache.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="optbench-") as tmp:
            spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
            spec_path.write_text(json.dumps(spec.to_dict()))
            read_fd, write_fd = os.pipe()
            # PCI_BUS_ID makes CUDA number GPUs as NVML does, so cuda:0 is the metered GPU
            env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", **os.environ,
                   "OPTBENCH_STATUS_FD": str(write_fd),
                   "OPTBENCH_CACHE_DIR": str(self.cache), "PYTHONUNBUFFERED": "1"}
            with log_path.open("w") as log_file:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "optbench.execute", str(spec_path), str(result_path)],
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,), env=env, start_new_session=True)
            os.close(write_fd)
            last_phase = ["starting"]
            reader = threading.Thread(target=self._read_phases, args=(read_fd, spec, last_phase),
                                      daemon=True)
            reader.start()
            timed_out = False
            try:
                proc.wait(timeout=spec.measure.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
            reader.join(timeout=2)
            wall_s = time.monotonic() - started
            result = self._result(proc.returncode, result_path, log_path, timed_out,
                                  spec.measure.timeout_s, last_phase[0])
        return ChildOutcome(result, wall_s, log_path)

    def _read_phases(self, fd: int, spec: RunSpec, last: list[str]) -> None:
        with os.fdopen(fd, "rb") as stream:
            for line in stream:
                try:
                    phase = json.loads(line)["phase"]
                except (ValueError, KeyError):
                    continue
                last[0] = phase
                self.events.phase(spec, phase)

    @staticmethod
    def _result(returncode: int | None, result_path: Path, log_path: Path, timed_out: bool,
                timeout_s: float, phase: str) -> RunResult:
        if timed_out:
            return RunResult("failed", f"timed out after {timeout_s:g} s during '{phase}' "
                                       f"(raise measure.timeout_s; log: {log_path})")
        if result_path.is_file():
            return RunResult.from_dict(json.loads(result_path.read_text()))
        if returncode is not None and returncode < 0:
            name = signal.Signals(-returncode).name
            hint = " - most likely the kernel's out-of-memory killer" if name == "SIGKILL" else ""
            return RunResult("failed", f"child process killed by {name}{hint} during '{phase}' "
                                       f"(log: {log_path})")
        tail = _last_line(log_path)
        return RunResult("failed", f"child process exited with code {returncode} during "
                                   f"'{phase}': {tail} (log: {log_path})")


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"
