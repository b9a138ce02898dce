"""Where a search's rows come from: the store (measuring what it lacks), or a replay.

A configuration the store already holds as `ok` on this machine is answered from it: the
search does not measure twice what a grid or an earlier search measured, and counts the
energy that measurement drew all the same (what a fresh one would draw).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from optbench.carbon import carbon_settings
from optbench.results.identity import where
from optbench.results.store import STORE_NAME, Store
from optbench.results.summary import summarize_run
from optbench.run.recipe import Recipe, RunSpec


class StoreRows:
    """The latest row of each configuration in OUT's store, measured at `env` (None: on
    any machine, for a replay elsewhere)."""

    def __init__(self, out: Path, env: str | None) -> None:
        self.out, self.env = out, env

    def latest(self, specs: Iterable[RunSpec]) -> dict[str, dict[str, Any]]:
        """key -> the newest row of each spec the store holds (any status)."""
        if not (self.out / STORE_NAME).is_file():
            return {}
        wanted = {s.key(): where(s.to_dict(), self.env or "") for s in specs}
        store = Store.open(self.out, readonly=True)
        try:
            ids = {key: run_id for run_id, key, at in store.run_keys()
                   if key in wanted and (self.env is None or wanted[key] == at)}
            carbon = carbon_settings()
            return {run.spec_key: summarize_run(run, carbon, None)
                    for run in store.iter_runs(sorted(ids.values()), raw=False)}
        finally:
            store.close()


class MeasureHere:
    """Evaluate by the store, measuring (the usual Runner, one configuration) what it
    does not hold as ok."""

    def __init__(self, out: Path, recipe: Recipe, runner: Any, env: str) -> None:
        self.recipe, self.runner = recipe, runner
        self.rows = StoreRows(out, env)

    def __call__(self, spec: RunSpec) -> dict[str, Any] | None:
        row = self.rows.latest([spec]).get(spec.key())
        if row is not None and row.get("status") == "ok":
            return row
        self.runner.run(self.recipe, only={spec.key()})
        return self.rows.latest([spec]).get(spec.key())


class Replay:
    """Evaluate from rows measured before (a grid): never measures."""

    def __init__(self, rows: Mapping[str, dict[str, Any]]) -> None:
        self.rows = rows

    def __call__(self, spec: RunSpec) -> dict[str, Any] | None:
        return self.rows.get(spec.key())
