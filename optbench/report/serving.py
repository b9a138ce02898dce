"""Serving scenarios in reports (pure): which configuration to run at an offered rate,
where configurations' energy-per-request curves cross, and the rate each holds under its
latency bound.

A configuration is one serving run: its rows (one per measured load) share `run_id`;
`row_id` tells them apart. `--rate R` takes each configuration's point nearest to R within
±10%: a sweep's shared grid and the rate search's probes rarely land on R exactly, and a
nearby unsaturated point describes the same regime. Energy ranks measured figures before
estimated ones, as closed-loop recommendations do, and only figures of the same
provenance are compared for overlaps and crossovers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from optbench.report.analysis import Group, measured
from optbench.report.recommend import Constraints, beyond_floor, quality_floor, quality_gates
from optbench.report.text import fmt, serving_label

Row = dict[str, Any]
RATE_TOLERANCE = 0.10  # a point qualifies for --rate R when within R * (1 ± this)
Curve = list[tuple[float, float]]  # (offered rate /s, energy per request J), rate ascending


@dataclass
class Configuration:
    """One serving run (backend, variant, batching policy, cache): its measured points,
    lowest offered rate first."""

    run_id: int
    rows: list[Row]

    @property
    def label(self) -> str:
        return serving_label(self.rows[0], short=True)

    @property
    def scenario(self) -> str:
        return self.rows[0].get("scenario") or "server"


def configurations(rows: list[Row]) -> list[Configuration]:
    """Serving rows grouped by run, in the order the runs first appear."""
    by_run: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_run[row["run_id"]].append(row)

    def order(r: Row) -> tuple[bool, float, int]:
        rate = r.get("offered_rate_per_s")
        return (rate is None, rate or 0.0, r.get("point", 0))

    return [Configuration(run_id, sorted(members, key=order))
            for run_id, members in by_run.items()]


def rate_text(rate: float) -> str:
    return f"{rate:.4g}"


# -- the choice at an offered rate ------------------------------------------------------------

@dataclass
class RateChoice:
    """The configuration to run at `rate_per_s` (its point there), runners-up and why."""

    rate_per_s: float
    constraints: Constraints
    best: Row | None = None
    runners_up: list[Row] = field(default_factory=list)
    rejected: list[tuple[Row, str]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    quality_floor: float | None = None
    indistinguishable: set[str] = field(default_factory=set)  # runners-up's row_ids


def nearest_point(config: Configuration, rate: float) -> tuple[Row | None, str | None]:
    """The point whose offered rate is nearest `rate` within the tolerance, or why none."""
    if config.scenario != "server":
        return None, (f"{config.scenario} scenario sets its own pace: no offered rate "
                      "(--rate compares server runs)")
    rated = [r for r in config.rows if r.get("offered_rate_per_s") is not None]
    if not rated:
        return None, "no offered rate measured"
    point = min(rated, key=lambda r: (abs(r["offered_rate_per_s"] - rate),
                                      bool(r.get("search_probe")), r.get("point", 0)))
    if abs(point["offered_rate_per_s"] - rate) > RATE_TOLERANCE * rate:
        rates = ", ".join(rate_text(x) for x in sorted({r["offered_rate_per_s"] for r in rated}))
        return None, (f"no point within ±{RATE_TOLERANCE:.0%} of {rate_text(rate)} req/s "
                      f"(measured: {rates} req/s)")
    return point, None


def latency_bound(row: Row, c: Constraints) -> tuple[float | None, str]:
    """The p99 bound that applies (seconds) and where it came from: the user's, else the
    one the recipe served under (a serving run states its service level)."""
    if c.max_latency_p99_s is not None:
        return c.max_latency_p99_s, ""
    recipe = row.get("latency_bound_ms")
    return (None, "") if recipe is None else (recipe / 1e3, " (the recipe's)")


def search_binds(row: Row, bound_s: float | None) -> bool:
    """Whether the run's max rate under its recipe bound also limits `bound_s`: it does
    when `bound_s` is no looser than the bound the search held to."""
    recipe = row.get("latency_bound_ms")
    return recipe is not None and bound_s is not None and bound_s <= recipe / 1e3 * (1 + 1e-9)


def point_rejection(row: Row, group: Group | None, c: Constraints,
                    floor: float | None) -> str | None:
    """Why a configuration's point at the asked rate does not qualify, or None."""
    assert c.rate_per_s is not None
    at = f"at {rate_text(row['offered_rate_per_s'])} req/s"
    if row.get("saturated"):
        return (f"saturated {at}: achieved {fmt(row.get('achieved_rate_per_s'), 1, 4)} "
                "req/s, the queue grows")
    bound_s, source = latency_bound(row, c)
    p99 = row.get("latency_p99_s")
    if bound_s is not None and (p99 is None or p99 > bound_s):
        shown = "unknown" if p99 is None else f"{p99 * 1e3:.3g} ms"
        return f"latency p99 {shown} {at} above the {bound_s * 1e3:g} ms bound{source}"
    ceiling = row.get("max_rate_under_bound_per_s")
    if ceiling is not None and ceiling < c.rate_per_s and search_binds(row, bound_s):
        return (f"holds its {row['latency_bound_ms']:g} ms bound only up to "
                f"{rate_text(ceiling)} req/s (rate search), below {rate_text(c.rate_per_s)}")
    beyond = beyond_floor(row, group, floor) if group is not None else None
    if beyond:
        return beyond
    if row.get("energy_per_request_j") is None:
        return f"no energy per request figure {at} (energy {row.get('energy_method') or '-'})"
    return None


def interval(row: Row) -> tuple[float, float] | None:
    value, ci = row.get("energy_per_request_j"), row.get("energy_per_request_ci95_j")
    if value is None or ci is None:
        return None
    return value - ci, value + ci


def overlaps(a: Row, b: Row) -> bool:
    """Whether two points' 95% energy intervals overlap (same provenance only)."""
    ia, ib = interval(a), interval(b)
    return (ia is not None and ib is not None and measured(a) == measured(b)
            and ia[0] <= ib[1] and ib[0] <= ia[1])


def recommend_at_rate(configs: list[Configuration], group: Group | None, c: Constraints,
                      runners_up: int = 3) -> RateChoice:
    """Least energy per request at the asked rate among the points that meet the
    constraints; measured figures before estimated ones."""
    assert c.rate_per_s is not None
    floor = (quality_floor(group, c.max_quality_drop, c.min_quality_ratio)
             if group is not None else None)
    choice = RateChoice(c.rate_per_s, c, quality_floor=floor)
    candidates = []
    for config in configs:
        point, why = nearest_point(config, c.rate_per_s)
        if point is not None:
            why = point_rejection(point, group, c, floor)
        if why:
            choice.rejected.append((point or config.rows[0], why))
        else:
            candidates.append(point)
    if not candidates:
        return choice
    ordered = sorted(candidates, key=lambda r: (0 if measured(r) else 1,
                                                r["energy_per_request_j"]))
    choice.best, choice.runners_up = ordered[0], ordered[1:1 + runners_up]
    choice.indistinguishable = {r["row_id"] for r in choice.runners_up
                                if overlaps(choice.best, r)}
    choice.reasons = explain_at_rate(choice, len(candidates), group)
    return choice


def energy_text(row: Row) -> str:
    """Energy per request in mJ, with its 95% interval where the windows gave one, and
    its method."""
    ci = row.get("energy_per_request_ci95_j")
    spread = f" ± {fmt(ci, 1e3, 2)} mJ (95% CI, " if ci is not None else " mJ (one window, "
    return f"{fmt(row.get('energy_per_request_j'), 1e3)}{spread}{row.get('energy_method')})"


def explain_at_rate(choice: RateChoice, qualified: int, group: Group | None) -> list[str]:
    best, c = choice.best, choice.constraints
    assert best is not None
    offered, achieved = best["offered_rate_per_s"], best.get("achieved_rate_per_s")
    among = (f" among the {qualified} serving configurations" if qualified > 1
             else ": the only serving configuration")
    reasons = [f"least energy per request at {rate_text(choice.rate_per_s)} req/s{among} "
               "meeting the constraints",
               f"energy per request {energy_text(best)} at offered {rate_text(offered)} req/s "
               f"(achieved {fmt(achieved, 1, 4)})"]
    if not measured(best):
        reasons.append("no measured energy figure qualified: this one is "
                       f"{best.get('energy_method')}")
    bound_s, source = latency_bound(best, c)
    p99 = fmt(best.get("latency_p99_s"), 1e3)
    reasons.append(f"latency p99 {p99} ms (no latency bound given)" if bound_s is None
                   else f"latency p99 {p99} ms within the {bound_s * 1e3:g} ms bound{source}")
    share = best.get("idle_share")
    reasons.append("idle share unknown (no measured idle baseline)" if share is None else
                   f"idle share {share:.0%} of that energy (net "
                   f"{fmt(best.get('net_energy_per_request_j'), 1e3)} mJ per request)")
    ceiling = best.get("max_rate_under_bound_per_s")
    if ceiling is not None:
        least = "at least " if best.get("max_rate_is_lower_bound") else ""
        reasons.append(f"holds its {best['latency_bound_ms']:g} ms bound up to "
                       f"{least}{rate_text(ceiling)} req/s (rate search)")
    if choice.quality_floor is not None and group is not None:
        bound = ">= floor" if group.higher_is_better else "<= ceiling"
        reasons.append(f"{group.metric} {best['quality_value']:.4g} {bound} "
                       f"{choice.quality_floor:.4g}")
    if best.get("mean_batch") is not None:
        hits = best.get("cache_hit_rate")
        reasons.append(f"mean batch {fmt(best['mean_batch'])}" + (
            f", cache hit rate {hits:.0%}" if best.get("cache_size") and hits is not None
            else ""))
    for other in choice.runners_up:
        if other["row_id"] in choice.indistinguishable:
            reasons.append(f"not distinguishable in energy from {serving_label(other)}: the "
                           "95% intervals overlap")
    return reasons


def runner_up_text(choice: RateChoice, row: Row) -> str:
    """A runner-up with its energy at the rate, and whether it is within noise of the best."""
    text = (f"{serving_label(row)}: {energy_text(row)} per request, "
            f"p99 {fmt(row.get('latency_p99_s'), 1e3)} ms")
    if row["row_id"] in choice.indistinguishable:
        text += "; not distinguishable from the best (the 95% intervals overlap)"
    return text


def asked_text(c: Constraints) -> str:
    """What the at-rate choice was asked, in words."""
    assert c.rate_per_s is not None
    asked = [f"at {rate_text(c.rate_per_s)} req/s", "least energy per request"]
    asked.extend(quality_gates(c))
    asked.append(f"latency p99 at most {c.max_latency_p99_s * 1e3:g} ms"
                 if c.max_latency_p99_s is not None else "the recipe's latency bound, if any")
    return ", ".join(asked)


# -- curves and their crossovers ---------------------------------------------------------------

@dataclass(frozen=True)
class Crossover:
    """Two configurations' energy-per-request curves cross at `rate_per_s`."""

    rate_per_s: float
    cheaper_below: str  # configuration label
    cheaper_above: str
    within_noise: bool | None = None  # the 95% intervals overlap next to it; None: unknown


def energy_curve(config: Configuration, key: str = "energy_per_request_j") -> Curve:
    """(offered rate, energy per request) up to the first saturated rate: beyond it the
    configuration does not keep up and its figures describe a growing backlog. Points
    without an energy figure are left out; repeated rates are averaged. With `key` the
    interval's key: the same curve of 95% half-widths (empty when one is missing)."""
    if config.scenario != "server":
        return []
    by_rate: dict[float, list[float]] = defaultdict(list)
    for row in config.rows:
        rate = row.get("offered_rate_per_s")
        if rate is None:
            continue
        if row.get("saturated"):
            break
        if row.get("energy_per_request_j") is not None:
            if row.get(key) is None:
                return []
            by_rate[rate].append(row[key])
    return [(rate, sum(v) / len(v)) for rate, v in sorted(by_rate.items())]


def curve_measured(config: Configuration) -> bool:
    return all(measured(r) for r in config.rows if r.get("energy_per_request_j") is not None)


def interpolate(curve: Curve, x: float) -> float:
    """The curve's value at x (within its range), linear between measured rates."""
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return curve[0][1] if x <= curve[0][0] else curve[-1][1]


def crossings(a: Curve, b: Curve) -> list[tuple[float, bool, float, float]]:
    """Where curve a crosses curve b: (rate, whether a is the cheaper one below it, and the
    compared rates either side of the crossing).

    Only over the range both measured; each curve is linear between its own measured
    rates, and the difference is taken at every rate either measured in that range, so
    a crossing between two such rates is found by linear interpolation.
    """
    if not a or not b:
        return []
    lo, hi = max(a[0][0], b[0][0]), min(a[-1][0], b[-1][0])
    if lo >= hi:
        return []
    xs = sorted({x for x, _ in a + b if lo <= x <= hi})
    found: list[tuple[float, bool, float, float]] = []
    last: tuple[float, float] | None = None  # the last rate with a non-zero difference
    zero: float | None = None  # the first rate of equal energy since then
    for x in xs:
        d = interpolate(a, x) - interpolate(b, x)
        if d == 0:
            zero = x if zero is None else zero
            continue
        if last is not None and (last[1] < 0) != (d < 0):
            x0, d0 = last
            rate = zero if zero is not None else x0 + (x - x0) * d0 / (d0 - d)
            found.append((rate, d0 < 0, x0, x))
        last, zero = (x, d), None
    return found


def within_noise(a: Curve, b: Curve, ca: Curve, cb: Curve, rates: tuple[float, float]
                 ) -> bool | None:
    """Whether, at a compared rate either side of a crossing, the two curves' difference is
    within their summed 95% half-widths (so which is cheaper there is not resolved)."""
    if not ca or not cb:
        return None
    return any(abs(interpolate(a, x) - interpolate(b, x)) <= interpolate(ca, x)
               + interpolate(cb, x) for x in rates)


def crossovers(configs: list[Configuration]) -> list[Crossover]:
    """Every crossing of two configurations' energy curves (same provenance), by rate."""
    curves = [(c, energy_curve(c), energy_curve(c, "energy_per_request_ci95_j"),
               curve_measured(c)) for c in configs]
    found = []
    for (ca, a, ia, ma), (cb, b, ib, mb) in combinations(curves, 2):
        if ma != mb:
            continue
        for rate, a_below, x0, x1 in crossings(a, b):
            below, above = (ca, cb) if a_below else (cb, ca)
            found.append(Crossover(rate, below.label, above.label,
                                   within_noise(a, b, ia, ib, (x0, x1))))
    return sorted(found, key=lambda x: x.rate_per_s)


def comparable(configs: list[Configuration]) -> bool:
    """Whether any two curves of the same provenance share a range of rates."""
    curves = [(energy_curve(c), curve_measured(c)) for c in configs]
    return any(a and b and ma == mb and max(a[0][0], b[0][0]) < min(a[-1][0], b[-1][0])
               for (a, ma), (b, mb) in combinations(curves, 2))


def crossover_lines(configs: list[Configuration], found: list[Crossover]) -> list[str]:
    """The crossovers in words, or why there are none."""
    if found:
        return [f"below {rate_text(x.rate_per_s)} req/s {x.cheaper_below} costs less energy "
                f"per request than {x.cheaper_above}; above it {x.cheaper_above} does"
                + (" (within measurement noise: the 95% intervals overlap next to it)"
                   if x.within_noise else "") for x in found]
    if comparable(configs):
        return ["the energy-per-request curves do not cross over the rates the "
                "configurations measured unsaturated"]
    return ["no two configurations were measured unsaturated over a common range of rates "
            "(with energy figures of the same provenance): no crossover to compute"]


def max_rate_text(config: Configuration) -> str:
    """The highest offered rate a configuration held its latency bound at, or why none."""
    first = config.rows[0]
    if config.scenario != "server":
        return f"{config.label}: {config.scenario} has no offered rate"
    bound, ceiling = first.get("latency_bound_ms"), first.get("max_rate_under_bound_per_s")
    if bound is None:
        return f"{config.label}: no latency bound in the recipe, not searched"
    if ceiling is not None:
        least = "at least " if first.get("max_rate_is_lower_bound") else ""
        return (f"{config.label}: {least}{rate_text(ceiling)} req/s with p99 within "
                f"{bound:g} ms" + (" (no failing rate found above it)" if least else ""))
    if any(r.get("search_probe") for r in config.rows):
        return f"{config.label}: no measured rate held the {bound:g} ms bound"
    return f"{config.label}: not searched (or no rate held the {bound:g} ms bound)"


# -- what a report shows of one group's serving runs ---------------------------------------------

@dataclass
class ServingView:
    """A group's serving configurations, their crossovers and, with --rate, the choice."""

    group: Group
    configurations: list[Configuration]
    crossovers: list[Crossover]
    bounds_s: list[float]  # latency bounds to draw: the user's, else the recipes'
    choice: RateChoice | None = None

    @property
    def rows(self) -> list[Row]:
        """Every point, by configuration then offered rate."""
        return [r for c in self.configurations for r in c.rows]

    @property
    def key(self) -> str:
        return f"{self.group.model}|{self.group.metric}"


def serving_view(group: Group, rows: list[Row], c: Constraints) -> ServingView | None:
    """The group's serving runs (None when it has none)."""
    machines = {r["run_id"]: r["env_label"] for r in group.rows if r.get("env_label")}
    mine = [{**r, "env_label": machines[r["run_id"]]} if r["run_id"] in machines else r
            for r in rows if r.get("status") == "ok" and r["model"] in group.models
            and r["quality_metric"] == group.metric]  # machine names are set on run rows
    if not mine:
        return None
    configs = configurations(mine)
    bounds = ([c.max_latency_p99_s] if c.max_latency_p99_s is not None else
              sorted({r["latency_bound_ms"] / 1e3 for r in mine
                      if r.get("latency_bound_ms") is not None}))
    choice = recommend_at_rate(configs, group, c) if c.rate_per_s is not None else None
    return ServingView(group, configs, crossovers(configs), bounds, choice)


def serving_views(groups: list[Group], rows: list[Row], c: Constraints) -> dict[str, ServingView]:
    """Serving views by group key (`model|metric`, as the figures are keyed)."""
    views = (serving_view(g, rows, c) for g in groups)
    return {v.key: v for v in views if v is not None}


# -- figures' data (drawn by figures.py as PNG/SVG and by html.py with Plotly) -----------------

@dataclass(frozen=True)
class LoadSeries:
    """One configuration's line against offered load; None where a point has no value."""

    label: str
    x: list[float]
    y: list[float | None]
    err: list[float | None]
    saturated: list[bool]
    measured: bool
    rows: list[Row]  # the points, in the order of x


LOAD_FIGURES = {  # stem -> (row key, its 95% interval key, scale, axis title, title)
    "serving_energy": ("energy_per_request_j", "energy_per_request_ci95_j", 1e3,
                       "energy per request (mJ)", "energy per request vs offered load"),
    "serving_p99": ("latency_p99_s", None, 1e3, "latency p99 (ms)",
                    "p99 latency vs offered load"),
}


def load_series(view: ServingView, key: str, err_key: str | None,
                scale: float) -> list[LoadSeries]:
    """One series per server configuration with an offered rate: x offered, y `key`."""
    out = []
    for config in view.configurations:
        rows = [r for r in config.rows if r.get("offered_rate_per_s") is not None]
        if config.scenario != "server" or not rows:
            continue

        def scaled(value: Any) -> float | None:
            return None if value is None else value * scale

        out.append(LoadSeries(
            config.label, [r["offered_rate_per_s"] for r in rows],
            [scaled(r.get(key)) for r in rows],
            [scaled(r.get(err_key)) if err_key else None for r in rows],
            [bool(r.get("saturated")) for r in rows], curve_measured(config), rows))
    return out


def spans_decades(values: list[float | None]) -> bool:
    """Whether positive values span more than a factor 20: then a log axis reads better."""
    shown = [v for v in values if v is not None and v > 0]
    return bool(shown) and max(shown) / min(shown) > 20


SERVING_NOTE = (
    "One row per configuration and offered load. Latency is arrival to completion, queueing "
    "and batching wait included. Energy per request is the metered windows' energy over the "
    "requests completed in them (idle gaps included: what serving at that rate costs); net "
    "subtracts the idle baseline, and idle share is the part of the energy it explains. "
    "Saturated: completions fell behind arrivals and the queue grew."
)
