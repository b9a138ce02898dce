"""CSV and JSON export: one row per configuration (its latest run), stable columns."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from optbench.carbon import CarbonSettings
from optbench.errors import UsageError
from optbench.report.render import latest_runs
from optbench.results.store import Store
from optbench.results.summary import EXPORT_COLUMNS, summarize_run

FORMATS = ("csv", "json")


def export_rows(out_dir: Path, fmt: str, carbon: CarbonSettings | None = None) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    store = Store.open(out_dir, must_exist=True)
    try:
        rows = [summarize_run(r, carbon) for r in latest_runs(store.runs())]
    finally:
        store.close()
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
