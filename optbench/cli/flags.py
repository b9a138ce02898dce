"""Option groups that several commands share, declared once.

`report_flags(...)` adds the carbon and price options (and, where asked, the
recommendation constraints and MLflow) to a command and hands it one `ReportFlags`.
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer
from typer.models import OptionInfo

from optbench.errors import UsageError

DEFAULT_OUT = Path("reports")


def path_parser(flag: str) -> Callable[[Any], Path]:
    """The parser of a directory option: its value as a Path, an empty one refused, since
    Path('') is the current directory and `--out ''` (say, an unset shell variable) would
    write there."""
    def parse(value: Any) -> Path:
        if isinstance(value, Path):  # the default, already a Path
            return value
        if not str(value).strip():
            raise UsageError(f"{flag} must not be an empty path (for the current directory, "
                             f"write {flag} .)")
        return Path(value)

    return parse


OutOption = typer.Option(DEFAULT_OUT, "--out", "-o", parser=path_parser("--out"),
                         help="output directory (store + report)")
ResumeOption = typer.Option(False, "--resume", help="skip configurations already ok")
PrintRecipeOption = typer.Option(False, "--print-recipe", help="show the recipe, run nothing")
ExecutorOption = typer.Option(None, "--executor",
                              help="local (default) | ray: each configuration a task on a "
                                   "Ray cluster's node of its machine kind")
RayAddressOption = typer.Option(None, "--ray-address",
                                help="the Ray cluster, HOST:PORT (default: RAY_ADDRESS, or "
                                     "the cluster started on this machine); implies ray")
MachinesOption = typer.Option(None, "--machines",
                              help="machine kinds to run on, e.g. h100,cpu (nodes offering "
                                   "machine:KIND; default every kind); implies ray")

CARBON = {
    "region": (Optional[str], typer.Option(None, "--region",
                                           help="grid region for CO2 (default: world)")),
    "carbon_intensity": (Optional[float], typer.Option(
        None, "--carbon-intensity", help="gCO2e/kWh, overrides --region")),
    "pue": (Optional[float], typer.Option(None, "--pue",
                                          help="data-centre PUE for CO2 (default 1.0)")),
    "price_per_kwh": (Optional[float], typer.Option(
        None, "--price-per-kwh", help="electricity price, for cost columns")),
    "price_per_hour": (Optional[str], typer.Option(
        None, "--price-per-hour",
        help="machines' prices per hour, KIND=PRICE[,KIND=PRICE] (a machine kind, or the "
             "host name of a run no executor placed), over the recipe's: cost per million")),
}
CONSTRAINTS = {
    "objective": (str, typer.Option(
        "energy", "--objective", help="energy | latency | throughput | co2 | cost | ttft | tpot")),
    "max_quality_drop": (Optional[str], typer.Option(
        None, "--max-quality-drop",
        help="allowed quality drop below the fp32 baseline: 0.01 or 1% (one point of "
             "top-1), or in the metric's own units (perplexity)")),
    "min_quality_ratio": (Optional[str], typer.Option(
        None, "--min-quality-ratio",
        help="quality at least this share of the fp32 baseline, as MLPerf does: 0.99 or "
             "99% (for perplexity: at most baseline / ratio)")),
    "max_latency_p99_ms": (Optional[float], typer.Option(
        None, "--max-latency-p99-ms", help="latency p99 ceiling in ms")),
    "rate": (Optional[float], typer.Option(
        None, "--rate", help="offered load in requests/s: choose among serving runs' points "
                             "within 10% of it, by energy per request")),
}
# Options that take comma-separated values, by parameter name: `report_flags` checks each
# for empty items (naming the flag) before the command runs, whoever splits it later.
COMMA_LISTS = ("backends", "batch_sizes", "meters", "rates", "max_batch", "max_wait_ms",
               "machines")
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
    machine_prices: dict[str, float] = field(default_factory=dict)  # --price-per-hour


def _build(values: dict[str, Any]) -> ReportFlags:
    from optbench.carbon import carbon_settings
    from optbench.report.recommend import Constraints

    price = values.get("price_per_kwh")
    non_negative("--price-per-kwh", price)
    drop = fraction("--max-quality-drop", values.get("max_quality_drop"))
    non_negative("--max-quality-drop", drop)
    ratio = fraction("--min-quality-ratio", values.get("min_quality_ratio"))
    if ratio is not None and not (math.isfinite(ratio) and 0 < ratio <= 1):
        raise UsageError(f"--min-quality-ratio must be in (0, 1] (0.99 or 99%: quality at "
                         f"least 99% of the fp32 baseline), got {values['min_quality_ratio']}")
    latency_ms = values.get("max_latency_p99_ms")
    rate = values.get("rate")
    positive("--max-latency-p99-ms", latency_ms)
    positive("--rate", rate)
    try:
        constraints = Constraints(drop, None if latency_ms is None else latency_ms / 1e3,
                                  values.get("objective", "energy"), rate,
                                  min_quality_ratio=ratio)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    uri = values.get("mlflow_uri") or ("" if values.get("mlflow") else None)
    carbon = carbon_settings(values.get("region"), values.get("carbon_intensity"),
                             values.get("pue"))
    return ReportFlags(carbon, price, constraints, uri,
                       machine_prices(values.get("price_per_hour")))


def machine_prices(text: str | None) -> dict[str, float]:
    """--price-per-hour h100=4.1,cpu=0.3 -> {"h100": 4.1, "cpu": 0.3}."""
    prices: dict[str, float] = {}
    for item in split(text, "--price-per-hour"):
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            price = float(value) if sep and name else math.nan
        except ValueError:
            price = math.nan
        if not (math.isfinite(price) and price >= 0):
            raise UsageError(f"--price-per-hour takes KIND=PRICE pairs with a price >= 0, "
                             f"such as h100=4.1,cpu=0.3; got {item!r}")
        if name in prices:
            raise UsageError(f"--price-per-hour: {name} is priced twice")
        prices[name] = price
    return prices


def fraction(flag: str, text: str | None) -> float | None:
    """A share given as a fraction ("0.01") or a percentage ("1%")."""
    if text is None:
        return None
    body = text.strip()
    scale = 100.0 if body.endswith("%") else 1.0
    try:
        return float(body.removesuffix("%").strip()) / scale
    except ValueError:
        raise UsageError(f"{flag} takes a number such as 0.01 or 1%, got {text!r}") from None


def positive(flag: str, value: float | None) -> None:
    """A rate or a bound must be a positive finite number (or not given)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{flag} must be a positive number, got {value:g}")


def non_negative(flag: str, value: float | None) -> None:
    """A price or an allowed drop must be a finite number >= 0 (or not given): NaN compares
    false with everything, so a bare `< 0` test lets it through to disable the check."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise UsageError(f"{flag} must be a finite number >= 0, got {value:g}")


def report_flags(constraints: bool = False, mlflow: bool = False) -> Callable[..., Any]:
    """Decorator: the command takes `flags: ReportFlags` in place of the shared options.

    It also guards the command's own options: a path option (--out, --dest) refuses an
    empty value, and a comma-list option (COMMA_LISTS) an empty item."""
    groups = {**CARBON, **(CONSTRAINTS if constraints else {}), **(MLFLOW if mlflow else {})}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "flags"]
        for param in own:  # --out, --dest: never an empty path (see path_parser)
            option = param.default
            if isinstance(option, OptionInfo) and option.parser is None and _is_path(
                    param.annotation):
                option.parser = path_parser(max(option.param_decls, key=len))
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                    annotation=kind) for name, (kind, option) in groups.items()]

        lists = {p.name: max(p.default.param_decls, key=len) for p in own
                 if p.name in COMMA_LISTS and isinstance(p.default, OptionInfo)}

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            for name, flag in lists.items():
                if isinstance(kwargs.get(name), str):
                    split(kwargs[name], flag)  # raises on an empty item, naming the flag
            values = {name: kwargs.pop(name) for name in groups}
            return command(flags=_build(values), **kwargs)

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared)
        return wrapper

    return decorate


def _is_path(annotation: Any) -> bool:
    """Path, Optional[Path] or list[Path]."""
    if annotation is Path:
        return True
    return any(_is_path(arg) for arg in typing.get_args(annotation))


def split(value: str | None, flag: str | None = None) -> list[str]:
    """A comma-separated flag value as a list; None is the empty list. An empty item
    (`1,,2`, a trailing comma, an empty value) is an error naming the flag: dropping it
    silently would run something other than what was typed."""
    if value is None:
        return []
    name = flag or "a comma-separated option"
    if not value.strip():
        raise UsageError(f"{name}: needs at least one value")
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise UsageError(f"{name}: empty item in {value!r}; separate values by single commas")
    return items


def placement(executor: str | None, address: str | None, machines: str | None,
              recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `executor:` and `machines:` recipe entries that --executor, --ray-address and
    --machines give, over the recipe's own (`recipe`); an address or machine kinds without
    --executor mean ray. Checked like the recipe's, with the flag named in the error."""
    from optbench.run.parse import EXECUTORS, parse_machines

    recipe = recipe or {}
    if executor is not None and executor not in EXECUTORS:
        raise UsageError(f"--executor: unknown executor {executor!r}; choose one of "
                         f"{', '.join(EXECUTORS)}")
    kind = executor or ("ray" if address or machines else None)
    if kind == "local" and (address or machines):
        raise UsageError(f"{'--ray-address' if address else '--machines'} needs "
                         "--executor ray (the local executor runs here)")
    if address is not None and not address.strip():
        raise UsageError("--ray-address must not be empty (HOST:PORT, or auto)")
    entries = {k: recipe[k] for k in ("executor", "machines") if recipe.get(k) is not None}
    if kind is not None:
        old = entries.get("executor")
        old_address = old.get("address") if isinstance(old, dict) else None
        entries["executor"] = {"kind": kind, **(
            {"address": address or old_address} if kind == "ray" and (
                address or old_address) else {})}
        if kind == "local":
            entries.pop("machines", None)
    if machines is not None:  # the recipe's prices stay with the kinds it prices
        priced = {e["name"]: e for e in recipe.get("machines") or ()
                  if isinstance(e, dict) and e.get("name")}
        entries["machines"] = [priced.get(name, name)
                               for name in parse_machines(machines, "--machines")]
    return entries
