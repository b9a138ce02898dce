"""Rows for reports from one or more stores (e.g. a CPU box and a GPU box side by side)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optbench.carbon import CarbonSettings
from optbench.report.analysis import QUALITY_TEST_KEYS, add_break_even, compare_quality
from optbench.report.fleet import add_costs
from optbench.results.identity import where
from optbench.results.store import Store, StoredRun
from optbench.results.summary import serving_rows, summarize_run


def latest_runs(runs: Iterable[StoredRun]) -> list[StoredRun]:
    """The newest run of each (spec, environment or machine kind): reruns replace older
    results in reports."""
    latest: dict[tuple[str, str], StoredRun] = {}
    for run in runs:
        latest[(run.spec_key, where(run.spec, run.env_id))] = run
    return sorted(latest.values(), key=lambda r: r.id)


def latest_ids(store: Store) -> list[int]:
    """The ids `latest_runs` would keep, chosen from the runs' keys alone (nothing else of
    a run is read for one that a rerun replaced)."""
    latest: dict[tuple[str, str], int] = {}
    for run_id, key, env in store.run_keys():
        latest[(key, env)] = run_id
    return sorted(latest.values())


def env_label(env: dict[str, Any]) -> str:
    """A short human name for a machine: host, then its GPU or CPU model."""
    gpus = env.get("gpus", {}).get("devices", [])
    hardware = gpus[0]["name"] if gpus else env.get("cpu", {}).get("model", "?")
    return f"{env.get('hostname', '?')} ({hardware})"


@dataclass
class ReportData:
    """`rows`: one per run (closed loop); `serving`: one per serving run x measured load."""

    rows: list[dict[str, Any]]
    serving: list[dict[str, Any]] = field(default_factory=list)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    recipes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def load(outs: list[Path], carbon: CarbonSettings, price_per_kwh: float | None,
         machine_prices: Mapping[str, float] | None = None) -> ReportData:
    """Summary rows of the latest runs of every store; ids made unique across stores.

    Stores are opened read-only: reading writes nothing (a store on read-only media can be
    reported, a file that is not a store is left as it is) and never waits for a writer.
    `machine_prices` (machine kind or host name -> price per hour) override the prices
    the runs' recipes gave, for the cost per million inferences.
    Runs are read a chunk at a time without their raw latency arrays (the stored latency
    statistics serve the rows), so memory holds the rows, not the store.
    """
    data = ReportData([], sources=[str(o) for o in outs])
    for index, out in enumerate(outs):
        store = Store.open(out, readonly=True)
        try:
            for run in store.iter_runs(latest_ids(store), raw=False):
                row = summarize_run(run, carbon, price_per_kwh)
                row["store_run_id"] = run.id
                row["run_id"] = index * 10_000_000 + run.id
                row["recipe"] = run.spec.get("recipe")
                data.rows.append(row)
                data.serving.extend(serving_rows(run, row))
                if run.env_id not in data.environments:
                    data.environments[run.env_id] = store.environment(run.env_id)
                row["hostname"] = data.environments[run.env_id].get("hostname")
                if row["recipe"] and row["recipe"] not in data.recipes:
                    data.recipes.append(row["recipe"])
        finally:
            store.close()
    add_costs(data.rows, data.serving, machine_prices or {})
    add_break_even(data.rows)
    compare_quality(data.rows)  # paired tests against each group's baseline, for the export
    tested = {r["run_id"]: r for r in data.rows}
    for point in data.serving:  # a serving point is judged on its configuration's outputs
        point.update({k: tested[point["run_id"]].get(k) for k in QUALITY_TEST_KEYS})
    # a machine is named where several are side by side: by its kind when an executor
    # placed the run (its nodes are one machine for the report), else by host and hardware
    labels = {row["run_id"]: row.get("machine") or env_label(data.environments[row["env_id"]])
              for row in data.rows}
    if len(set(labels.values())) > 1:
        for row in data.rows + data.serving:
            row["env_label"] = labels[row["run_id"]]
    return data
