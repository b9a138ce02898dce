"""CSV and JSON export: one row per configuration (its latest run), stable columns; a
serving configuration gives one row per measured load instead."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from optbench.carbon import CarbonSettings, carbon_settings
from optbench.errors import UsageError
from optbench.report.columns import EXPORT_COLUMNS

FORMATS = ("csv", "json")


def export_rows(out_dir: Path, fmt: str, carbon: CarbonSettings | None = None,
                price_per_kwh: float | None = None) -> str:
    from optbench.report.data import load

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    data = load([out_dir], carbon or carbon_settings(), price_per_kwh)
    served = {r["run_id"] for r in data.serving}
    rows = [r for r in data.rows if r["run_id"] not in served] + data.serving
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
