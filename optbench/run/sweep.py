"""Runs every RunSpec of a recipe in its own child process; the parent alone writes the store.

A crash, hang or out-of-memory kill in one backend becomes a `failed` record with the
reason, and the sweep goes on. `resume` skips specs already `ok` under the same
environment. Progress is reported through a RunnerEvents object (the CLI draws it).

Presets that interleave (rigorous) keep a group of configurations loaded at once, each in
its own child, and ask them for energy trials in turn (A B C A B C, random 0-1 s gaps),
so thermal drift favours none; each stops when its own confidence interval is tight.
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from optbench.backends import BACKENDS
from optbench.cache import cache_root
from optbench.env import env_id, fingerprint, git_state
from optbench.measure.loop import converged
from optbench.measure.presets import PRESETS
from optbench.results.schema import RunResult, Trial
from optbench.results.store import Store, utc_now
from optbench.run.child import Child
from optbench.run.protocol import CMD_FINISH, CMD_TRIAL, READY, TRIAL
from optbench.run.recipe import Recipe, RunSpec

log = logging.getLogger(__name__)


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
class Context:
    store: Store
    env_id: str
    git_sha: str | None
    git_dirty: bool | None


class Runner:
    def __init__(self, out_dir: Path, events: RunnerEvents | None = None,
                 cache: Path | None = None, rng: random.Random | None = None,
                 interleave_group: int = 4) -> None:
        self.out_dir = out_dir
        self.events = events or SilentEvents()
        self.cache = cache or cache_root()
        self.rng = rng or random.Random()
        self.interleave_group = interleave_group

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
            ctx = Context(store, env_id(env), *git_state())
            store.put_environment(ctx.env_id, env)
            todo = []
            for index, spec in enumerate(specs):
                if resume and store.has_ok(spec.key(), ctx.env_id):
                    self.events.started(index, len(specs), spec)
                    self.events.finished(spec, None, RunResult("skipped", "resume: already ok"))
                else:
                    todo.append((index, spec))
            # Serving points are metered inside one child, rate by rate: not interleaved.
            if PRESETS[recipe.measure.preset].interleave and recipe.scenario is None:
                return self._interleaved(todo, len(specs), ctx)
            written = []
            for index, spec in todo:
                self.events.started(index, len(specs), spec)
                child = self._spawn(spec, serve=False)
                written.append(self._record(ctx, child, child.wait()))
            return written
        finally:
            store.close()

    def _spawn(self, spec: RunSpec, serve: bool) -> Child:
        logs = self.out_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{spec.backend.name}-{spec.variant.name}")[:48]
        log_path = logs / f"{stamp}-{spec.key()}-{name}.log"
        self.cache.mkdir(parents=True, exist_ok=True)
        return Child(spec, log_path, self.cache, lambda p: self.events.phase(spec, p), serve)

    def _record(self, ctx: Context, child: Child, result: RunResult) -> int:
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - child.wall_s))
        run_id = ctx.store.add_run(
            child.spec.to_dict(), child.spec.key(), ctx.env_id, result, git_sha=ctx.git_sha,
            git_dirty=ctx.git_dirty, started_at=started + "+00:00", finished_at=utc_now(),
            wall_s=child.wall_s, log_path=str(child.log_path))
        self.events.finished(child.spec, run_id, result)
        return run_id

    def _interleaved(self, todo: list[tuple[int, RunSpec]], total: int, ctx: Context) -> list[int]:
        written: list[int] = []
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
                written.append(self._record(ctx, child, child.wait()))
        return written
