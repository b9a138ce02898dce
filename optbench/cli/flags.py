"""Option groups that several commands share, declared once.

`report_flags(...)` adds the carbon and price options (and, where asked, the
recommendation constraints and MLflow) to a command and hands it one `ReportFlags`.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from optbench.errors import UsageError

DEFAULT_OUT = Path("reports")
OutOption = typer.Option(DEFAULT_OUT, "--out", "-o", help="output directory (store + report)")
ResumeOption = typer.Option(False, "--resume", help="skip configurations already ok")
PrintRecipeOption = typer.Option(False, "--print-recipe", help="show the recipe, run nothing")

CARBON = {
    "region": (Optional[str], typer.Option(None, "--region",
                                           help="grid region for CO2 (default: world)")),
    "carbon_intensity": (Optional[float], typer.Option(
        None, "--carbon-intensity", help="gCO2e/kWh, overrides --region")),
    "pue": (Optional[float], typer.Option(None, "--pue",
                                          help="data-centre PUE for CO2 (default 1.0)")),
    "price_per_kwh": (Optional[float], typer.Option(
        None, "--price-per-kwh", help="electricity price, for cost columns")),
}
CONSTRAINTS = {
    "objective": (str, typer.Option("energy", "--objective",
                                    help="energy | latency | throughput | co2 | ttft | tpot")),
    "max_quality_drop": (Optional[float], typer.Option(
        None, "--max-quality-drop",
        help="allowed quality drop below the fp32 baseline, as a fraction (0.01 = one point "
             "of top-1), or in the metric's own units (perplexity)")),
    "max_latency_p99_ms": (Optional[float], typer.Option(
        None, "--max-latency-p99-ms", help="latency p99 ceiling in ms")),
    "rate": (Optional[float], typer.Option(
        None, "--rate", help="offered load in requests/s: choose among serving runs' points "
                             "within 10% of it, by energy per request")),
}
MLFLOW = {
    "mlflow": (bool, typer.Option(False, "--mlflow", help="log runs and the report to MLflow "
                                                          "(local store OUT/mlruns)")),
    "mlflow_uri": (Optional[str], typer.Option(None, "--mlflow-uri",
                                               help="MLflow tracking URI (implies --mlflow)")),
}


@dataclass
class ReportFlags:
    """What the shared options say: carbon settings, price, constraints, MLflow target."""

    carbon: Any
    price_per_kwh: float | None = None
    constraints: Any = None
    mlflow_uri: str | None = None  # None: no MLflow; "": the default local store


def _build(values: dict[str, Any]) -> ReportFlags:
    from optbench.carbon import carbon_settings
    from optbench.report.recommend import Constraints

    price = values.get("price_per_kwh")
    if price is not None and price < 0:
        raise UsageError(f"--price-per-kwh must be non-negative, got {price:g}")
    latency_ms = values.get("max_latency_p99_ms")
    rate = values.get("rate")
    positive("--max-latency-p99-ms", latency_ms)
    positive("--rate", rate)
    try:
        constraints = Constraints(values.get("max_quality_drop"),
                                  None if latency_ms is None else latency_ms / 1e3,
                                  values.get("objective", "energy"), rate)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    uri = values.get("mlflow_uri") or ("" if values.get("mlflow") else None)
    carbon = carbon_settings(values.get("region"), values.get("carbon_intensity"),
                             values.get("pue"))
    return ReportFlags(carbon, price, constraints, uri)


def positive(flag: str, value: float | None) -> None:
    """A rate or a bound must be a positive finite number (or not given)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{flag} must be a positive number, got {value:g}")


def report_flags(constraints: bool = False, mlflow: bool = False) -> Callable[..., Any]:
    """Decorator: the command takes `flags: ReportFlags` in place of the shared options."""
    groups = {**CARBON, **(CONSTRAINTS if constraints else {}), **(MLFLOW if mlflow else {})}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "flags"]
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                    annotation=kind) for name, (kind, option) in groups.items()]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in groups}
            return command(flags=_build(values), **kwargs)

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared)
        return wrapper

    return decorate


def split(value: str | None) -> list[str]:
    """A comma-separated flag value as a list, blanks dropped."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]
