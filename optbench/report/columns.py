"""The one catalogue of report columns: every output is derived from `COLUMNS`.

A Column's line says where it goes: the CSV/JSON export (all `export` columns, in
catalogue order), MLflow (`mlflow` metric or param), a Pareto figure and front (`plot`),
a `recommend --objective` (`objective`), the Markdown and HTML run tables (`table`), and
the serving tables (`serving`: one row per configuration x offered load).
Adding a metric is one line here. Views that lead with a figure list energy first (the
headline), then follow catalogue order; the tables have their own order (`Shown.at`),
since the export's column order is fixed and reads differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from optbench.report.text import fmt, pct, run_label, serving_label

if TYPE_CHECKING:
    from optbench.report.analysis import Group

Row = dict[str, Any]
CellText = Callable[[Row, "Group"], str]


@dataclass(frozen=True)
class Shown:
    """How the run tables show a column."""

    at: int  # position among the tables' columns
    head: str  # header; {metric} and {unit} are the group's quality metric and sample unit
    when: str | None = None  # only when some row of the group has a value for this key
    left: bool = False  # text, not a number: shown as is, left-aligned in HTML
    digits: int = 3
    cell: CellText | None = None  # the cell's text, where it is more than the value
    flag_estimated: bool = False  # HTML marks the cell of a row with estimated energy


@dataclass(frozen=True)
class Column:
    key: str  # the summary row's key
    label: str = ""  # words for figures and reasons; {unit} is the sample unit
    sense: Literal["min", "max"] | None = None  # which way is better
    scale: float = 1.0  # display multiplier (s -> ms: 1e3)
    unit: str = ""  # the display unit after scaling
    export: bool = True  # a CSV/JSON export column
    mlflow: Literal["metric", "param"] | None = None
    plot: str | None = None  # figure file stem: drawn, with its front, against quality
    front: tuple[str, str] | None = None  # (letter, words) in the tables' "fronts" column
    objective: str | None = None  # name for `recommend --objective`
    table: Shown | None = None
    serving: Shown | None = None  # how the serving tables show it

    @property
    def axis(self) -> str:
        """The figure axis title, e.g. "latency p99 (ms)"."""
        return f"{self.label} ({self.unit})"

    def shown_in(self, group: Group) -> bool:
        when = self.table.when if self.table else None
        return when is None or any(r.get(when) is not None for r in group.rows)

    def cell(self, row: Row, group: Group) -> str:
        assert self.table is not None
        return self.shown_cell(self.table, row, group)

    def shown_cell(self, shown: Shown, row: Row, group: Group) -> str:
        if shown.cell is not None:
            return shown.cell(row, group)
        value = row.get(self.key)
        if shown.left:
            return "-" if value in (None, "") else str(value)
        return fmt(value, self.scale, shown.digits)


def energy_cell(row: Row, group: Group) -> str:
    """Median with its 95% interval, or why there is no figure."""
    if row.get("energy_per_sample_j") is None and row.get("energy_reason"):
        return f"- ({row['energy_reason']})"
    text = fmt(row.get("energy_per_sample_j"), 1e3)
    if row.get("energy_per_sample_ci95_j") is not None:
        text += f" ± {fmt(row['energy_per_sample_ci95_j'], 1e3, 2)}"
    return text


def request_energy_cell(row: Row, group: Group) -> str:
    """A serving point's energy per request with its 95% interval over the windows."""
    text = fmt(row.get("energy_per_request_j"), 1e3)
    if row.get("energy_per_request_ci95_j") is not None:
        text += f" ± {fmt(row['energy_per_request_ci95_j'], 1e3, 2)}"
    return text


def share_cell(row: Row, group: Group) -> str:
    share = row.get("idle_share")
    return "-" if share is None else f"{share:.0%}"


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def delta(name: str, show: Callable[[float | None], str]) -> CellText:
    """A cell of the row's change against its group's baseline (see analysis.add_deltas)."""
    return lambda row, group: show(row.get("delta", {}).get(name))


def quality_cell(row: Row, group: Group) -> str:
    """The headline quality figure with its 95% interval (Wilson or bootstrap)."""
    value, low, high = (row.get(k) for k in ("quality_value", "quality_ci95_low",
                                             "quality_ci95_high"))
    text = fmt(value, 1.0, 4)
    if value is not None and low is not None:
        text += f" [{low:.4g}, {high:.4g}]"
    return text


def quality_delta_cell(row: Row, group: Group) -> str:
    """The change against the baseline, and whether a paired test on the same samples can
    tell it from noise: "≈ fp32" when it cannot."""
    change = row.get("delta", {}).get("quality")
    p = row.get("quality_delta_p_value")
    if change is None or p is None:
        return signed(change)
    base = group.baseline["variant"] if group.baseline else "baseline"
    shown = f"{signed(change)}, p={p:.2g}"
    return f"≈ {base} ({shown})" if row.get("quality_tied") else shown


def validity_cell(row: Row) -> str:
    """"ok", or the names of the checks the run failed (their details are in provenance)."""
    failed = [c["name"] for c in row.get("validity_checks") or [] if c["status"] == "fail"]
    if failed:
        return "failed: " + ", ".join(failed)
    return row.get("validity") or "-"


CO2_UNITS = ((1.0, "g"), (1e-3, "mg"), (1e-6, "µg"))


def co2_unit(group: Group) -> tuple[float, str]:
    """The CO2 unit that shows the group's largest figure as at least 1: g, mg or µg."""
    values = [abs(r["co2_g_per_1000"]) for r in group.rows if r.get("co2_g_per_1000")]
    top = max(values, default=1.0)
    return next(((s, u) for s, u in CO2_UNITS if top >= s), CO2_UNITS[-1])


def group_co2_unit(group: Group) -> tuple[float, str]:
    """co2_unit, worked out once per group (every cell asks)."""
    if "co2_unit" not in group.memo:
        group.memo["co2_unit"] = co2_unit(group)
    return group.memo["co2_unit"]


def co2_cell(row: Row, group: Group) -> str:
    scale, _ = group_co2_unit(group)
    return fmt(row.get("co2_g_per_1000"), 1 / scale)


def front_marks(row: Row, group: Group) -> str:
    """The letters of the fronts a row is on, then 3 for the 3-objective set."""
    marks = "".join(c.front[0] for c in PLOTTED
                    if c.front and row["run_id"] in group.fronts.get(c.key, set()))
    return marks + ("3" if row["run_id"] in group.front3 else "")


def overlap_cell(row: Row, group: Group) -> str:
    """The nearest configurations whose energy intervals overlap, and how many more."""
    near = group.overlaps.get(row["run_id"], [])
    text = ", ".join(run_label(group.by_id(i), short=True) for i in near)
    more = group.overlap_counts.get(row["run_id"], len(near)) - len(near)
    return text + (f" and {more} more" if more > 0 else "")


COLUMNS = (
    Column("run_id"),
    Column("model", mlflow="param",  # shown where several models share a group's fronts
           table=Shown(15, "model", left=True, when="shared_front")),
    Column("backend", mlflow="param", table=Shown(20, "backend", left=True)),
    Column("variant", mlflow="param", table=Shown(30, "variant", left=True)),
    Column("batch_size", mlflow="param",
           table=Shown(40, "batch", cell=lambda row, group: str(row["batch_size"]))),
    Column("device", mlflow="param", table=Shown(50, "device", left=True)),
    Column("status"),
    Column("reason"),
    Column("quality_metric", mlflow="param"),
    Column("quality_value", mlflow="metric",
           table=Shown(60, "{metric} (95% CI)", cell=quality_cell)),
    Column("latency_p50_s", "latency p50", "min", 1e3, "ms", mlflow="metric",
           plot="latency_p50", table=Shown(80, "p50 ms"), serving=Shown(40, "p50 ms")),
    Column("latency_p90_s", mlflow="metric"),
    Column("latency_p99_s", "latency p99", "min", 1e3, "ms", mlflow="metric",
           plot="latency_p99", front=("L", "latency p99"), objective="latency",
           table=Shown(90, "p99 ms"), serving=Shown(50, "p99 ms")),
    Column("latency_mean_s"),
    Column("latency_device_p50_s", mlflow="metric"),
    Column("throughput_per_s", "throughput", "max", 1.0, "{unit}/s", mlflow="metric",
           plot="throughput", front=("T", "throughput"), objective="throughput",
           table=Shown(130, "{unit}/s")),
    Column("energy_per_sample_j", "energy per {unit}", "min", 1e3, "mJ", mlflow="metric",
           plot="energy", front=("E", "energy"), objective="energy",
           table=Shown(140, "energy/{unit} mJ (95% CI)", cell=energy_cell)),
    Column("energy_per_sample_ci95_j", mlflow="metric"),
    Column("energy_per_sample_cov"),
    Column("energy_trials"),
    Column("energy_method", mlflow="param",
           table=Shown(190, "method", left=True, flag_estimated=True),
           serving=Shown(100, "method", left=True, flag_estimated=True)),
    Column("energy_channels", mlflow="param"),
    Column("energy_gpu_per_sample_j", scale=1e3, unit="mJ", mlflow="metric",
           table=Shown(170, "GPU mJ", when="energy_gpu_per_sample_j")),
    Column("energy_cpu_per_sample_j", scale=1e3, unit="mJ", mlflow="metric",
           table=Shown(180, "CPU mJ", when="energy_gpu_per_sample_j")),  # the split's other half
    Column("idle_power_w", mlflow="metric"),
    Column("net_energy_per_sample_j", mlflow="metric"),
    Column("energy_flags"),
    Column("energy_reason"),
    Column("energy_per_1000_wh", mlflow="metric"),
    Column("co2_g_per_1000", "gCO2e per 1,000 {unit}s", "min", mlflow="metric",
           objective="co2", table=Shown(200, "{co2_unit}CO2e/1k {unit}s", cell=co2_cell)),
    Column("carbon_intensity_g_per_kwh"),
    Column("pue"),
    Column("cost_per_1000", mlflow="metric", table=Shown(210, "cost/1k", when="cost_per_1000")),
    Column("price_per_kwh"),
    Column("sample_unit"),
    Column("ttft_p50_s", "time to first token p50", "min", 1e3, "ms", plot="ttft",
           front=("F", "time to first token"), objective="ttft",
           table=Shown(100, "TTFT p50 ms", when="ttft_p50_s")),  # text generation only
    Column("ttft_p99_s"),
    Column("tpot_p50_s", "time per output token p50", "min", 1e3, "ms", plot="tpot",
           front=("P", "time per output token"), objective="tpot",
           table=Shown(110, "TPOT p50 ms", when="ttft_p50_s")),
    Column("tpot_p99_s"),
    Column("itl_p99_s"),
    Column("requests_per_s", table=Shown(120, "requests/s", when="ttft_p50_s")),
    Column("energy_per_request_j", "energy per request", "min", 1e3, "mJ",
           serving=Shown(70, "energy/request mJ (95% CI)", cell=request_energy_cell)),
    Column("new_tokens"),
    Column("timing_source"),
    Column("weights", mlflow="param"),
    Column("lineage"),
    Column("parameters"),
    Column("macs"),
    Column("model_bytes"),
    Column("training_energy_j"),
    Column("bench_energy_j"),  # what measuring it drew (optbench search spends this)
    Column("bench_energy_method"),
    Column("bench_wall_s"),
    Column("training_energy_method"),
    Column("training_s"),
    Column("training_budget_exhausted"),
    Column("break_even_samples"),
    Column("break_even_note"),
    Column("precision_path", mlflow="param"),
    Column("env_id"),
    Column("git_sha"),
    Column("started_at"),
    # serving, appended (the export keeps its order): one row per configuration x
    # measured load (results.summary.serving_rows)
    Column("scenario"),
    Column("max_batch"),
    Column("max_wait_ms"),
    Column("cache_size"),
    Column("repeat_skew"),
    Column("offered_rate_per_s", "offered load", unit="req/s",
           serving=Shown(20, "offered/s", digits=4)),
    Column("arrival_rate_per_s"),
    Column("achieved_rate_per_s", "achieved rate", unit="req/s",
           serving=Shown(30, "achieved/s", digits=4)),
    Column("goodput_per_s", "goodput", unit="req/s", serving=Shown(60, "goodput/s", digits=4)),
    Column("saturated", serving=Shown(110, "saturated", left=True,
                                      cell=lambda row, group: "yes" if row.get("saturated")
                                      else "")),
    Column("dropped"),
    Column("mean_batch", serving=Shown(65, "mean batch")),
    Column("cache_hit_rate"),
    Column("energy_per_request_ci95_j"),
    Column("net_energy_per_request_j", "net energy per request", scale=1e3, unit="mJ",
           serving=Shown(80, "net mJ")),
    Column("idle_share", "idle share", serving=Shown(90, "idle share", cell=share_cell)),
    Column("serving_power_w"),
    Column("energy_per_token_j"),
    Column("latency_bound_ms"),
    Column("max_rate_under_bound_per_s"),
    Column("capacity_per_s"),
    Column("search_probe"),
    Column("closed_loop_latency_p50_s"),
    Column("closed_loop_latency_p99_s"),
    Column("served_agreement"),
    Column("loadgen_validity"),
    Column("loadgen_latency_p99_s"),
    Column("serving_errors"),
    Column("serving_notes"),
    Column("row_id"),
    Column("batching"),
    Column("max_rate_is_lower_bound"),
    Column("completed"),
    # quality uncertainty and paired significance against the baseline (results/quality.py)
    Column("quality_ci95_low", mlflow="metric"),
    Column("quality_ci95_high", mlflow="metric"),
    Column("quality_ci_method"),
    Column("quality_samples"),
    Column("quality_delta"),
    Column("quality_delta_p_value", mlflow="metric"),
    Column("quality_test"),
    Column("quality_tied"),
    Column("quality_samples_to_resolve"),
    # validity checks per run (results/validity.py): "ok" or what failed
    Column("validity", table=Shown(215, "validity", left=True, when="validity",
                                   cell=lambda row, group: validity_cell(row))),
    # where an executor ran it (run/ray_executor.py): the machine kind and the node
    Column("machine", mlflow="param"),
    Column("node"),
    # the fleet's cost (report/fleet.py): electricity + the machine's time per million
    Column("price_per_hour"),
    Column("cost_per_million", "cost per million {unit}s", "min", unit="currency",
           mlflow="metric", plot="cost", front=("C", "cost"), objective="cost",
           table=Shown(212, "cost/1M {unit}s", when="cost_per_million", digits=4)),
    Column("cost_energy_per_million"),
    Column("cost_machine_per_million"),
    Column("cost_per_million_low"),
    Column("cost_per_million_high"),
    Column("foreign_cpu_max_cores"),
    # issue 17: deep or classic (models/classic.py), its family, the `models:` recipe
    Column("model_kind"),
    Column("model_family"),
    Column("front"),
    # not exported: set by report.data, or computed per group for the tables
    Column("env_label", export=False,
           table=Shown(10, "machine", when="env_label", left=True)),  # several machines
    Column("recipe", export=False, mlflow="param"),
    Column("delta_quality", export=False, table=Shown(70, "Δ quality (paired test)",
                                                      cell=quality_delta_cell)),
    Column("delta_energy", export=False, table=Shown(150, "Δ energy", cell=delta("energy", pct))),
    Column("delta_latency_p99", export=False,
           table=Shown(160, "Δ p99", cell=delta("latency_p99", pct))),
    Column("fronts", export=False, table=Shown(220, "fronts", left=True, cell=front_marks)),
    Column("overlaps", export=False, table=Shown(230, "not distinguishable (energy)",
                                                 left=True, cell=overlap_cell)),
    Column("serving_config", export=False,
           serving=Shown(10, "configuration", left=True,
                         cell=lambda row, group: serving_label(row, short=True))),
)
BY_KEY = {c.key: c for c in COLUMNS}
HEADLINE = "energy_per_sample_j"


def headline_first(columns: list[Column]) -> tuple[Column, ...]:
    return tuple(sorted(columns, key=lambda c: c.key != HEADLINE))


EXPORT_COLUMNS = tuple(c.key for c in COLUMNS if c.export)
MLFLOW_METRICS = tuple(c.key for c in COLUMNS if c.mlflow == "metric")
MLFLOW_PARAMS = tuple(c.key for c in COLUMNS if c.mlflow == "param")
PLOTTED = headline_first([c for c in COLUMNS if c.plot])
OBJECTIVE_COLUMNS = headline_first([c for c in COLUMNS if c.objective])
TABLE = tuple(sorted((c for c in COLUMNS if c.table), key=lambda c: c.table.at))
SERVING_TABLE = tuple(sorted((c for c in COLUMNS if c.serving), key=lambda c: c.serving.at))


def table_columns(group: Group) -> list[Column]:
    """The run-table columns this group shows, in table order."""
    return [c for c in TABLE if c.shown_in(group)]


def table_head(columns: list[Column], group: Group) -> list[str]:
    co2 = group_co2_unit(group)[1]
    return [c.table.head.format(metric=group.metric, unit=group.unit, co2_unit=co2)
            for c in columns]


def table_cells(columns: list[Column], row: Row, group: Group) -> list[str]:
    """One row's cells, unescaped: each renderer escapes them its own way."""
    return [c.cell(row, group) for c in columns]


def fronts_legend(group: Group) -> str:
    """What the tables' "fronts" and "not distinguishable" columns mean."""
    shown = [c for c in PLOTTED if c.front and c.shown_in(group)]
    letters = "".join(f"{c.front[0]} = {c.front[1]} vs quality, " for c in shown)
    return (f"Fronts: {letters}3 = non-dominated in (energy, latency p99, quality). Not "
            "distinguishable (energy) lists configurations whose 95% energy intervals "
            "overlap. Quality: 95% intervals (Wilson for accuracies, bootstrap over windows "
            "for perplexity); Δ quality is tested against the baseline on the same samples "
            "(exact McNemar, paired bootstrap), and a difference with p >= 0.05 is shown as "
            "≈ and counts as tied on the fronts.")


def serving_head(group: Group) -> list[str]:
    """The serving table's header (every column shows: a serving row has every key)."""
    return [c.serving.head.format(metric=group.metric, unit=group.unit)
            for c in SERVING_TABLE if c.serving]


def serving_cells(row: Row, group: Group) -> list[str]:
    """One serving point's cells, unescaped."""
    return [c.shown_cell(c.serving, row, group) for c in SERVING_TABLE if c.serving]
