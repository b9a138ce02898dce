"""Python API over results stores, for notebooks and scripts.

    import optbench.api as ob
    df = ob.runs("reports")                      # one row per configuration (pandas)
    rec = ob.recommend("reports", objective="energy", max_quality_drop=0.01)

Stores are opened read-only (`report.data.load`): reading one writes nothing, works on
read-only media and beside a sweep that is writing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optbench.carbon import carbon_settings
from optbench.report.analysis import analyse
from optbench.report.data import load
from optbench.report.recommend import Constraints, Recommendation
from optbench.report.recommend import recommend as recommend_group


def rows(*outs: str | Path, region: str | None = None, carbon_intensity: float | None = None,
         pue: float | None = None, price_per_kwh: float | None = None,
         price_per_hour: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Summary rows (dicts) of the latest run of every configuration in the stores;
    `price_per_hour` by machine kind (or host name) prices the machines' time."""
    carbon = carbon_settings(region, carbon_intensity, pue)
    return load([Path(o) for o in outs or ("reports",)], carbon, price_per_kwh,
                price_per_hour).rows


def runs(*outs: str | Path, **kwargs: Any) -> Any:
    """The same rows as a pandas DataFrame (needs pandas)."""
    import pandas as pd

    return pd.DataFrame(rows(*outs, **kwargs))


def recommend(*outs: str | Path, objective: str = "energy",
              max_quality_drop: float | None = None, max_latency_p99_s: float | None = None,
              min_quality_ratio: float | None = None, **kwargs: Any) -> list[Recommendation]:
    """One recommendation per (model, quality metric) group in the stores."""
    constraints = Constraints(max_quality_drop, max_latency_p99_s, objective,
                              min_quality_ratio=min_quality_ratio)
    return [recommend_group(g, constraints) for g in analyse(rows(*outs, **kwargs))]
