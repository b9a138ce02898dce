"""Runs every RunSpec of a recipe in its own child process; the parent alone writes the store.

A crash, hang or out-of-memory kill in one backend becomes a `failed` record with the
reason, and the sweep goes on. `resume` skips specs already `ok` under the same
environment. Progress is reported through a RunnerEvents object (the CLI draws it).

Faults around the sweep itself (docs/reliability.md): one sweep per output directory at a
time (run/outdir.py); Ctrl-C, SIGTERM or SIGHUP stop the children and say what was kept;
a store locked when a run ends is waited for, then the result is kept on disk
(run/pending.py) and imported later, never dropped.

Presets that interleave (rigorous) keep a group of configurations loaded at once, each in
its own child, and ask them for energy trials in turn (A B C A B C, random 0-1 s gaps),
so thermal drift favours none; each stops when its own confidence interval is tight.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from optbench.backends import BACKENDS
from optbench.cache import cache_root
from optbench.env import env_id, fingerprint, git_state
from optbench.measure.loop import converged
from optbench.measure.presets import PRESETS
from optbench.results.schema import RunResult, Trial
from optbench.results.store import Store, StoreLocked, utc_now
from optbench.run.child import Child
from optbench.run.outdir import OutputLock, log_path
from optbench.run.pending import PENDING_DIR, Record, import_pending, keep
from optbench.run.protocol import CMD_FINISH, CMD_TRIAL, READY, TRIAL
from optbench.run.recipe import Recipe, RunSpec

log = logging.getLogger(__name__)

STORE_WAIT_ENV = "OPTBENCH_STORE_WAIT_S"
STORE_WAIT_S = 300.0  # a finished run waits this long for a locked store, then is kept
STORE_BUSY_S = 30.0  # each attempt's SQLite busy timeout


class RunnerEvents(Protocol):
    def started(self, index: int, total: int, spec: RunSpec) -> None: ...
    def phase(self, spec: RunSpec, phase: str) -> None: ...
    def finished(self, spec: RunSpec, run_id: int | None, result: RunResult) -> None: ...
    def notice(self, text: str) -> None: ...


class SilentEvents:
    def started(self, index: int, total: int, spec: RunSpec) -> None:
        log.info("[%d/%d] %s", index + 1, total, spec.label())

    def phase(self, spec: RunSpec, phase: str) -> None:
        log.debug("%s: %s", spec.label(), phase)

    def finished(self, spec: RunSpec, run_id: int | None, result: RunResult) -> None:
        log.info("%s: %s %s", spec.label(), result.status, result.reason or "")

    def notice(self, text: str) -> None:
        log.warning("%s", text)


def gpu_visible() -> bool:
    from optbench.env import gpu_inventory

    return bool(gpu_inventory().get("devices"))


def resolve_device(requested: str, backend: str, has_gpu: bool) -> str:
    """"auto": CUDA for a backend that runs there when a GPU is visible, else the CPU."""
    if requested != "auto":
        return requested
    cls = BACKENDS.get(backend)
    if "cpu" not in cls.precisions:
        return "cuda"  # a GPU-only backend: where there is none, it reports why
    return "cuda" if has_gpu and cls.device_support("cuda") else "cpu"


@dataclass
class Finished:
    """One RunSpec's end as an executor reports it. `env_id`/`environment`: the machine it
    ran on, where that is not the sweep's own (a cluster node)."""

    spec: RunSpec
    result: RunResult
    wall_s: float
    log_path: Path | None
    env_id: str | None = None
    environment: dict[str, Any] | None = None


class Executor(Protocol):
    """Where RunSpecs run. The sweep (plan, resume, progress, the store) is the Runner's;
    an executor only turns specs into Finished records, in any order."""

    def plan(self, recipe: Recipe) -> list[RunSpec]: ...
    def execute(self, todo: list[tuple[int, RunSpec]], total: int, events: RunnerEvents,
                logs: Path, keep: Callable[[Finished], None]) -> None: ...
    def stop(self) -> list[str]: ...
    def close(self) -> None: ...


@dataclass
class Context:
    store: Store
    env_id: str
    environment: dict[str, Any]
    git_sha: str | None
    git_dirty: bool | None


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C, SIGTERM or SIGHUP: its children were stopped and what
    had finished is in the store. `signum` is the signal; `kept` the runs written."""

    def __init__(self, signum: int, kept: int, total: int, stopped: list[str]) -> None:
        super().__init__(signum)
        self.signum, self.kept, self.total, self.stopped = signum, kept, total, stopped


def store_patience_s() -> float:
    """How long a finished run waits for a locked store before it is kept on disk."""
    return float(os.environ.get(STORE_WAIT_ENV) or STORE_WAIT_S)


class Runner:
    def __init__(self, out_dir: Path, events: RunnerEvents | None = None,
                 cache: Path | None = None, rng: random.Random | None = None,
                 interleave_group: int = 4, executor: Executor | None = None) -> None:
        self.out_dir = out_dir
        self.executor = executor  # None: child processes on this machine
        self.events = events or SilentEvents()
        self.cache = cache or cache_root()
        self.rng = rng or random.Random()
        self.interleave_group = interleave_group
        self.results: list[RunResult] = []  # this sweep's, in the order they finished
        self.kept_on_disk: list[Path] = []  # results the locked store could not take
        self._live: list[Child] = []

    def plan(self, recipe: Recipe) -> list[RunSpec]:
        if self.executor is not None:
            return self.executor.plan(recipe)
        has_gpu = recipe.device == "auto" and gpu_visible()
        specs = []
        for spec in recipe.expand("cpu"):
            device = resolve_device(recipe.device, spec.backend.name, has_gpu)
            specs.append(RunSpec(**{**spec.__dict__, "device": device}))
        return specs

    def run(self, recipe: Recipe, resume: bool = False,
            only: Collection[str] | None = None) -> list[int]:
        """Run the recipe's sweep (`only`: just the configurations of these keys, a
        search's trial); returns the ids of the runs written. Interrupted (a
        KeyboardInterrupt, or SIGTERM/SIGHUP turned into one by the caller), it stops its
        children, removes their temporary files and raises SweepInterrupted."""
        try:
            specs = self.plan(recipe)
            if only is not None:
                specs = [s for s in specs if s.key() in only]
        except BaseException:
            if self.executor is not None:
                self.executor.close()
            raise
        written: list[int] = []
        with OutputLock(self.out_dir):
            # at least three attempts (each a message) before a result is kept on disk
            store = Store.open(self.out_dir, busy_timeout_s=min(STORE_BUSY_S,
                                                                 store_patience_s() / 3))
            try:
                imported = import_pending(self.out_dir, store)
                if imported:
                    self.events.notice(f"imported {len(imported)} result(s) kept in "
                                       f"{self.out_dir / PENDING_DIR} into the store")
                env = fingerprint()
                ctx = Context(store, env_id(env), env, *git_state())
                store.put_environment(ctx.env_id, env)
                todo = []
                for index, spec in enumerate(specs):
                    # placed on a machine kind: ok on any node of the kind is done
                    if resume and store.has_ok(spec.key(), ctx.env_id, spec.machine):
                        self.events.started(index, len(specs), spec)
                        self.events.finished(spec, None,
                                             RunResult("skipped", "resume: already ok"))
                    else:
                        todo.append((index, spec))
                if self.executor is not None:
                    if PRESETS[recipe.measure.preset].interleave:
                        self.events.notice("an executor runs each configuration on its own "
                                           "node: trials are not interleaved across them")
                    self.executor.execute(
                        todo, len(specs), self.events, self.out_dir / "logs",
                        lambda finished: self._store(ctx, finished, written))
                # Serving points are metered inside one child, rate by rate: not interleaved.
                elif PRESETS[recipe.measure.preset].interleave and recipe.scenario is None:
                    self._interleaved(todo, len(specs), ctx, written)
                else:
                    for index, spec in todo:
                        self.events.started(index, len(specs), spec)
                        child = self._spawn(spec, serve=False)
                        self._keep(ctx, child, child.wait(), written)
            except KeyboardInterrupt as exc:
                stopped = [c.spec.label() for c in self._live]
                if self.executor is not None:
                    stopped += self.executor.stop()
                self._stop_all()
                signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) \
                    else signal.SIGINT
                raise SweepInterrupted(signum, len(written), len(specs), stopped) from None
            finally:
                self._stop_all()
                if self.executor is not None:
                    self.executor.close()
                store.close()
        return written

    def _stop_all(self) -> None:
        while self._live:
            self._live.pop().close()

    def _spawn(self, spec: RunSpec, serve: bool) -> Child:
        logs = self.out_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        child = Child(spec, log_path(logs, spec.key(), f"{spec.backend.name}-"
                                     f"{spec.variant.name}"),
                      self.cache, lambda p: self.events.phase(spec, p), serve)
        self._live.append(child)
        return child

    def _keep(self, ctx: Context, child: Child, result: RunResult, written: list[int]) -> None:
        """Store a finished child's result."""
        self._live.remove(child)
        self._store(ctx, Finished(child.spec, result, child.wall_s, child.log_path), written)

    def _store(self, ctx: Context, finished: Finished, written: list[int]) -> None:
        """Store a finished run; a store locked past our patience is waited for with a
        message, and then the result is kept on disk, never dropped."""
        spec, result = finished.spec, finished.result
        self.results.append(result)
        env_id, environment = ctx.env_id, ctx.environment
        if finished.env_id is not None:  # measured elsewhere: that machine's fingerprint
            env_id, environment = finished.env_id, finished.environment or {}
        started = time.strftime("%Y-%m-%dT%H:%M:%S",
                                time.gmtime(time.time() - finished.wall_s))
        record = Record(spec.to_dict(), env_id, result,
                        ctx.git_sha, ctx.git_dirty, started + "+00:00", utc_now(),
                        finished.wall_s,
                        None if finished.log_path is None else str(finished.log_path))
        run_id = None
        deadline = time.monotonic() + store_patience_s()
        while run_id is None:
            try:
                if finished.env_id is not None:
                    ctx.store.put_environment(env_id, environment)
                run_id = record.add_to(ctx.store)
            except StoreLocked as exc:
                locked = f"{exc.path} is locked by another process"
                if time.monotonic() >= deadline:
                    path = keep(self.out_dir, record, environment)
                    self.kept_on_disk.append(path)
                    self.events.notice(
                        f"{locked}: kept the result of {spec.label()} in {path}; "
                        f"`optbench import --out {self.out_dir}` adds it to the store "
                        "(the next run into this directory does too)")
                    break
                self.events.notice(f"{locked}; waiting to write the result of "
                                   f"{spec.label()} (up to "
                                   f"{max(deadline - time.monotonic(), 0):.0f} s more)")
        if run_id is not None:
            written.append(run_id)
        self.events.finished(spec, run_id, result)

    def _interleaved(self, todo: list[tuple[int, RunSpec]], total: int, ctx: Context,
                     written: list[int]) -> None:
        for start in range(0, len(todo), self.interleave_group):
            group = todo[start:start + self.interleave_group]
            children = []
            for index, spec in group:
                self.events.started(index, total, spec)
                children.append(self._spawn(spec, serve=True))
            live = [c for c in children if c.expect(READY) is not None]
            trials: dict[int, list[Trial]] = {id(c): [] for c in live}
            protocol = PRESETS[group[0][1].measure.preset]
            for _ in range(protocol.trials_max):
                pending = [c for c in live if not (
                    len(trials[id(c)]) >= protocol.trials_min
                    and converged(trials[id(c)], protocol.ci_target))]
                if not pending:
                    break
                for child in pending:
                    time.sleep(self.rng.uniform(0.0, 1.0))
                    child.send(CMD_TRIAL)
                    message = child.expect(TRIAL)
                    if message is None:
                        live.remove(child)  # it failed or timed out: wait() explains
                        continue
                    trials[id(child)].append(Trial.from_dict(message[TRIAL]))
            for child in live:
                if child.proc.poll() is None:
                    child.send(CMD_FINISH)
            for child in children:
                self._keep(ctx, child, child.wait(), written)
