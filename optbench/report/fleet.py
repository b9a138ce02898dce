"""Machines side by side (pure): what each machine kind does best, what a million
inferences cost on it, and which machine to buy or rent.

Cost per million inferences is the electricity (energy per inference at `--price-per-kwh`,
times PUE) plus the machine's time (its `price_per_hour` over the inferences it does in an
hour). In closed loop the machine is busy all the time, so its time per inference is
1 / throughput: the least a million inferences can cost on it. At an offered rate R (a
serving run's point) the machine is held whether busy or not, so its time costs
price_per_hour / (3600 R) per request, and the electricity is the energy per request at
that rate, idle gaps included. A figure whose price was not given is empty, never zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from optbench.report.analysis import Group, energy_tied, measured
from optbench.report.recommend import Constraints, Recommendation, recommend
from optbench.report.serving import RateChoice, ServingView, rate_text, recommend_at_rate
from optbench.report.serving import overlaps as point_overlaps
from optbench.report.text import fmt, run_label, serving_label

Row = dict[str, Any]
MILLION = 1e6
J_PER_KWH = 3.6e6
COST_KEYS = ("cost_per_million", "cost_energy_per_million", "cost_machine_per_million",
             "cost_per_million_low", "cost_per_million_high")


# -- prices and costs on the rows -------------------------------------------------------------

def price_for(row: Row, prices: Mapping[str, float]) -> float | None:
    """The row's machine price per hour: the report's (by machine kind, else host name),
    over the one its recipe gave when it ran."""
    for name in (row.get("machine"), row.get("hostname")):
        if name and name in prices:
            return prices[name]
    return row.get("price_per_hour")


def energy_cost(joules: float | None, row: Row) -> float | None:
    """What `joules` per inference cost per million, at the row's electricity price."""
    price = row.get("price_per_kwh")
    if joules is None or price is None:
        return None
    return joules * MILLION / J_PER_KWH * (row.get("pue") or 1.0) * price


def machine_cost(rate_per_s: float | None, row: Row) -> float | None:
    """The machine's time per million inferences when it does `rate_per_s` of them."""
    price = row.get("price_per_hour")
    if price is None or not rate_per_s or rate_per_s <= 0:
        return None
    return price * MILLION / (3600 * rate_per_s)


def closed_loop_cost(row: Row) -> dict[str, float | None]:
    """Cost per million at full load, with a range from the energy and throughput 95%
    intervals (None where a part is unpriced or unmeasured)."""
    energy = energy_cost(row.get("energy_per_sample_j"), row)
    rate = row.get("throughput_per_s")
    machine = machine_cost(rate, row)
    out: dict[str, float | None] = dict.fromkeys(COST_KEYS)
    out.update(cost_energy_per_million=energy, cost_machine_per_million=machine)
    if energy is None or machine is None:
        return out
    out["cost_per_million"] = energy + machine
    e_ci = row.get("energy_per_sample_ci95_j") or 0.0
    r_ci = row.get("throughput_ci95_per_s") or 0.0
    low_e = energy_cost(max(row["energy_per_sample_j"] - e_ci, 0.0), row)
    high_e = energy_cost(row["energy_per_sample_j"] + e_ci, row)
    high_m = machine_cost(rate - r_ci, row) if rate - r_ci > 0 else None
    out["cost_per_million_low"] = low_e + machine_cost(rate + r_ci, row)  # type: ignore[operator]
    out["cost_per_million_high"] = None if high_m is None else high_e + high_m  # type: ignore[operator]
    return out


def serving_cost(point: Row) -> dict[str, float | None]:
    """Cost per million requests at a serving point's offered rate; empty where the point
    saturated (the machine does not serve that rate)."""
    out: dict[str, float | None] = dict.fromkeys(COST_KEYS)
    rate = point.get("offered_rate_per_s")
    if point.get("saturated") or rate is None:
        return out
    energy = energy_cost(point.get("energy_per_request_j"), point)
    machine = machine_cost(rate, point)
    out.update(cost_energy_per_million=energy, cost_machine_per_million=machine)
    if energy is not None and machine is not None:
        out["cost_per_million"] = energy + machine
        ci = point.get("energy_per_request_ci95_j") or 0.0
        low = energy_cost(max(point["energy_per_request_j"] - ci, 0.0), point)
        high = energy_cost(point["energy_per_request_j"] + ci, point)
        out["cost_per_million_low"] = low + machine  # type: ignore[operator]
        out["cost_per_million_high"] = high + machine  # type: ignore[operator]
    return out


def add_costs(rows: list[Row], serving: list[Row], prices: Mapping[str, float]) -> None:
    """Each row's machine price (the report's over the recipe's) and cost per million."""
    by_run = {}
    for row in rows:
        row["price_per_hour"] = price_for(row, prices)
        row.update(closed_loop_cost(row) if row["status"] == "ok" else dict.fromkeys(COST_KEYS))
        by_run[row["run_id"]] = row
    for point in serving:
        point["price_per_hour"] = by_run[point["run_id"]]["price_per_hour"]
        point.update(serving_cost(point))


def cost_text(row: Row) -> str:
    """"1.23 (0.02 electricity + 1.21 machine)", or what is missing."""
    total = row.get("cost_per_million")
    energy, machine = row.get("cost_energy_per_million"), row.get("cost_machine_per_million")
    if total is not None:
        return (f"{fmt(total, 1, 4)} ({fmt(energy, 1, 3)} electricity + "
                f"{fmt(machine, 1, 3)} machine)")
    missing = []
    if row.get("price_per_kwh") is None:
        missing.append("--price-per-kwh")
    if row.get("price_per_hour") is None:
        missing.append("its price_per_hour")
    if missing:
        return f"- (no {' and no '.join(missing)})"
    return "- (saturated at this rate)" if row.get("saturated") else "- (no energy or rate figure)"


def costs_overlap(a: Row, b: Row) -> bool:
    """Whether two costs' 95% ranges overlap. A range without a top (the throughput's
    interval reaches zero) is open upwards."""
    lows = (a.get("cost_per_million_low"), b.get("cost_per_million_low"))
    if None in lows:
        return False
    highs = [math.inf if r.get("cost_per_million_high") is None else r["cost_per_million_high"]
             for r in (a, b)]
    return lows[0] <= highs[1] and lows[1] <= highs[0]  # type: ignore[operator]


# -- the fleet view of one group ----------------------------------------------------------------

@dataclass
class MachineChoice:
    """What the recommendation picks on one machine kind, and the cheapest there."""

    machine: str
    rec: Recommendation
    cheapest: Row | None

    @property
    def best(self) -> Row | None:
        return self.rec.best

    @property
    def price_per_hour(self) -> float | None:
        row = self.best or self.cheapest or (self.rec.group.rows[0] if self.rec.group.rows
                                             else {})
        return row.get("price_per_hour")

    @property
    def why_none(self) -> str:
        if not self.rec.rejected:
            return "no configuration measured"
        row, why = self.rec.rejected[0]
        more = len(self.rec.rejected) - 1
        return f"none meets the constraints ({run_label(row, short=True)}: {why}" + (
            f"; and {more} more)" if more else ")")


@dataclass
class RateMachine:
    """The serving choice at the asked rate on one machine kind."""

    machine: str
    choice: RateChoice


@dataclass
class FleetView:
    group: Group
    machines: list[MachineChoice]
    findings: list[str] = field(default_factory=list)
    rate_per_s: float | None = None
    at_rate: list[RateMachine] = field(default_factory=list)
    rate_findings: list[str] = field(default_factory=list)
    ray_cost: list[str] = field(default_factory=list)
    closed_loop: bool = True  # some run is not a serving run: the closed-loop table applies

    @property
    def key(self) -> str:
        return f"{self.group.model}|{self.group.metric}"


def machine_of(row: Row) -> str | None:
    return row.get("env_label")


def machines_in(rows: list[Row]) -> list[str]:
    """Machine names in the order they first appear."""
    seen: list[str] = []
    for row in rows:
        name = machine_of(row)
        if name and name not in seen:
            seen.append(name)
    return seen


def on_machine(group: Group, machine: str) -> Group:
    """The group restricted to one machine's rows (its baseline, hence its quality floor,
    stays the group's: every machine is held to the same quality)."""
    rows = [r for r in group.rows if machine_of(r) == machine]
    return replace(group, rows=rows, _index={}, memo={})


def fleet_view(group: Group, c: Constraints, serving: ServingView | None = None
               ) -> FleetView | None:
    """The group's machines side by side; None when its runs are on one machine."""
    names = machines_in(group.rows)
    if len(names) < 2:
        return None
    cheap = replace(c, objective="cost", rate_per_s=None)
    machines = []
    for name in names:
        mine = on_machine(group, name)
        rec = recommend(mine, replace(c, rate_per_s=None), runners_up=0)
        machines.append(MachineChoice(name, rec, recommend(mine, cheap, runners_up=0).best))
    served = {k.run_id for k in serving.configurations} if serving is not None else set()
    view = FleetView(group, machines, rate_per_s=c.rate_per_s,
                     closed_loop=any(r["run_id"] not in served for r in group.rows))
    view.findings = findings(view, c)
    view.ray_cost = foreign_cpu_lines(group, names)
    if serving is not None and c.rate_per_s is not None:
        for name in names:
            configs = [k for k in serving.configurations if machine_of(k.rows[0]) == name]
            view.at_rate.append(RateMachine(name, recommend_at_rate(configs, group, c)))
        view.rate_findings = rate_findings(view)
    return view


def fleet_views(groups: list[Group], c: Constraints,
                serving: Mapping[str, ServingView] | None = None) -> dict[str, FleetView]:
    serving = serving or {}
    views = (fleet_view(g, c, serving.get(f"{g.model}|{g.metric}")) for g in groups)
    return {v.key: v for v in views if v is not None}


def ratio_text(a: float, b: float) -> str:
    return f"{b / a:.3g}x" if a > 0 else "-"


def compare_line(what: str, chosen: list[tuple[str, Row]], key: str, sense: str,
                 scale: float, unit: str, tied: Any = None) -> str | None:
    """"Least X: A on M (v); then B on N (w, 1.8x)" over each machine's chosen row."""
    have = [(m, r) for m, r in chosen if r.get(key) is not None]
    if len(have) < 2:
        return None
    have.sort(key=lambda mr: mr[1][key] if sense == "min" else -mr[1][key])
    (machine, top), rest = have[0], have[1:]
    line = f"{what}: {machine} ({run_label(top, short=True)}, {fmt(top[key], scale, 3)}{unit})"
    others = []
    for m, r in rest:
        a, b = (top[key], r[key]) if sense == "min" else (r[key], top[key])
        same = " - not distinguishable" if tied is not None and tied(top, r) else ""
        others.append(f"{m} {fmt(r[key], scale, 3)}{unit} ({ratio_text(a, b)}{same})")
    return line + "; then " + ", ".join(others)


def findings(view: FleetView, c: Constraints) -> list[str]:
    """What the machines' chosen configurations say, one line per axis."""
    group = view.group
    chosen = [(m.machine, m.best) for m in view.machines if m.best is not None]
    lines = []
    energy = [(m, r) for m, r in chosen if measured(r)] or chosen
    for line in (
        compare_line(f"least energy per {group.unit}", energy, "energy_per_sample_j", "min",
                     1e3, " mJ", energy_tied),
        compare_line("lowest latency p99", chosen, "latency_p99_s", "min", 1e3, " ms"),
        compare_line("highest throughput", chosen, "throughput_per_s", "max", 1,
                     f" {group.unit}s/s"),
    ):
        if line:
            lines.append(line)
    cheapest = [(m.machine, m.cheapest) for m in view.machines if m.cheapest is not None]
    if len(cheapest) >= 2:
        cheapest.sort(key=lambda mr: mr[1]["cost_per_million"])
        (machine, top), rest = cheapest[0], cheapest[1:]
        others = [f"{m} {fmt(r['cost_per_million'], 1, 4)} ({run_label(r, short=True)}"
                  + (", not distinguishable" if costs_overlap(top, r) else "") + ")"
                  for m, r in rest]
        lines.append(f"cheapest per million {group.unit}s: {machine} with "
                     f"{run_label(top, short=True)}, {cost_text(top)}; then {', '.join(others)}")
    elif chosen:
        lines.append(f"cost per million {group.unit}s: {unpriced(view)}")
    return lines


def unpriced(view: FleetView) -> str:
    """Why the machines' costs cannot be compared: the prices missing, or the figures."""
    rows = view.group.rows
    kwh = any(r.get("price_per_kwh") is not None for r in rows)
    missing = [m for m in machines_in(rows) if all(
        r.get("price_per_hour") is None for r in rows if machine_of(r) == m)]
    need = ([] if kwh else ["--price-per-kwh"]) + (
        [f"a price per hour for {', '.join(missing)} (recipe machines: [{{name: KIND, "
         "price_per_hour: P}], or --price-per-hour KIND=P)"] if missing else [])
    if need:
        return f"not priced; give {' and '.join(need)}"
    return "fewer than two machines have a configuration with both an energy and a rate figure"


def rate_findings(view: FleetView) -> list[str]:
    """The at-rate choices side by side: least energy per request and cheapest."""
    rate = view.rate_per_s
    assert rate is not None
    held = [(m.machine, m.choice.best) for m in view.at_rate if m.choice.best is not None]
    lines = []
    held_by = {m for m, _ in held}
    for m in view.at_rate:
        if m.machine not in held_by:
            why = m.choice.rejected[0][1] if m.choice.rejected else "no server run there"
            lines.append(f"{m.machine}: nothing serves {rate_text(rate)} req/s within the "
                         f"constraints ({why})")
    if not held:
        return lines
    energy = sorted(((m, r) for m, r in held if r.get("energy_per_request_j") is not None),
                    key=lambda mr: (not measured(mr[1]), mr[1]["energy_per_request_j"]))
    if energy:
        machine, top = energy[0]
        lines.insert(0, f"least energy per request at {rate_text(rate)} req/s: {machine} "
                     f"({serving_label(top, short=True)}, "
                     f"{fmt(top['energy_per_request_j'], 1e3)} mJ)" + "".join(
                         f"; then {m} {fmt(r['energy_per_request_j'], 1e3)} mJ"
                         + (" (not distinguishable)" if point_overlaps(top, r) else "")
                         for m, r in energy[1:]))
    priced = sorted(((m, r) for m, r in held if r.get("cost_per_million") is not None),
                    key=lambda mr: mr[1]["cost_per_million"])
    if priced:
        machine, top = priced[0]
        others = [f"{m} {fmt(r['cost_per_million'], 1, 4)}"
                  + (" (not distinguishable)" if costs_overlap(top, r) else "")
                  for m, r in priced[1:]]
        lines.insert(len(energy[:1]), f"cheapest per million requests at {rate_text(rate)} "
                     f"req/s: {machine} "
                     f"({serving_label(top, short=True)}), {cost_text(top)}"
                     + (f"; then {', '.join(others)}" if others else ""))
    else:
        lines.insert(len(energy[:1]), f"cost per million requests at {rate_text(rate)} "
                     f"req/s: {unpriced(view)}")
    return lines


def foreign_cpu_lines(group: Group, names: list[str]) -> list[str]:
    """Other processes' CPU in each machine's metered windows (an executor's daemons among
    them): what the contention check judged, per machine."""
    lines = []
    for name in names:
        seen = [r["foreign_cpu_max_cores"] for r in group.rows
                if machine_of(r) == name and r.get("foreign_cpu_max_cores") is not None]
        if seen:
            flagged = sum(1 for r in group.rows if machine_of(r) == name
                          and "contention" in str(r.get("validity") or ""))
            lines.append(f"{name}: other processes used at most {max(seen):.2g} cores in a "
                         f"metered window ({len(seen)} run{'s' if len(seen) > 1 else ''}"
                         + (f"; {flagged} flagged by the contention check" if flagged else
                            "; none over the contention threshold") + ")")
    return lines


# -- the tables ---------------------------------------------------------------------------------

FLEET_HEAD = ("machine", "price/h", "chosen on it", "quality", "energy/{unit} mJ", "p99 ms",
              "{unit}s/s", "cost per million", "cheapest there (cost per million)")
RATE_HEAD = ("machine", "price/h", "chosen at {rate} req/s", "energy/request mJ", "p99 ms",
             "achieved/s", "cost per million requests")


def fleet_head(view: FleetView) -> list[str]:
    return [h.format(unit=view.group.unit) for h in FLEET_HEAD]


def fleet_cells(m: MachineChoice) -> list[str]:
    price = fmt(m.price_per_hour, 1, 4)
    cheap = "-" if m.cheapest is None else (
        f"{run_label(m.cheapest, short=True)} ({fmt(m.cheapest['cost_per_million'], 1, 4)})")
    if m.best is None:
        return [m.machine, price, m.why_none, "-", "-", "-", "-", "-", cheap]
    r = m.best
    energy = fmt(r.get("energy_per_sample_j"), 1e3)
    if r.get("energy_per_sample_ci95_j") is not None:
        energy += f" ± {fmt(r['energy_per_sample_ci95_j'], 1e3, 2)}"
    if r.get("energy_per_sample_j") is not None and not measured(r):
        energy += " (estimated)"
    return [m.machine, price, run_label(r, short=True), fmt(r.get("quality_value"), 1, 4),
            energy, fmt(r.get("latency_p99_s"), 1e3), fmt(r.get("throughput_per_s"), 1, 4),
            cost_text(r), cheap]


def rate_head(view: FleetView) -> list[str]:
    return [h.format(rate=rate_text(view.rate_per_s or 0)) for h in RATE_HEAD]


def rate_cells(m: RateMachine, price: float | None) -> list[str]:
    r = m.choice.best
    if r is None:
        why = m.choice.rejected[0][1] if m.choice.rejected else "no server run on it"
        return [m.machine, fmt(price, 1, 4), f"none ({why})", "-", "-", "-", "-"]
    energy = fmt(r.get("energy_per_request_j"), 1e3)
    if r.get("energy_per_request_ci95_j") is not None:
        energy += f" ± {fmt(r['energy_per_request_ci95_j'], 1e3, 2)}"
    return [m.machine, fmt(r.get("price_per_hour"), 1, 4), serving_label(r, short=True), energy,
            fmt(r.get("latency_p99_s"), 1e3), fmt(r.get("achieved_rate_per_s"), 1, 4),
            cost_text(r)]


def rate_rows(view: FleetView) -> list[list[str]]:
    prices = {m.machine: m.price_per_hour for m in view.machines}
    return [rate_cells(m, prices.get(m.machine)) for m in view.at_rate]


FLEET_NOTE = (
    "One row per machine kind: the configuration the recommendation picks on it (same "
    "constraints, same quality floor for every machine). Cost per million = electricity "
    "(energy at --price-per-kwh, times PUE) + machine time (price per hour over the "
    "throughput: the machine busy all the time, the least a million can cost on it). "
    "Prices are in the currency they were given in. The fronts above span every machine."
)
NO_CLOSED_LOOP = (
    "These are serving runs: machines are compared at an offered load. Give --rate R "
    "(requests/s) to see each machine's choice and cost at that load."
)
RATE_NOTE = (
    "At the offered rate the machine is held whether busy or not: its time costs price per "
    "hour / (3600 x rate) per request, and the electricity is the energy per request at that "
    "rate, idle gaps included."
)


Bar = tuple[str, float | None, float | None, float | None]  # machine, value, low, high


def bar_series(view: FleetView) -> list[tuple[str, str, list[Bar]]]:
    """The fleet figure's panels: (title, axis unit, [(machine, value, 95% low, high)]) for
    the energy, p99, throughput and cost of each machine's chosen configuration; a panel no
    machine has a figure for is left out."""
    unit = view.group.unit
    chosen = [(m.machine, m.best or {}) for m in view.machines]

    def around(key: str, scale: float, ci: str | None = None) -> list[Bar]:
        out: list[Bar] = []
        for machine, row in chosen:
            value, half = row.get(key), row.get(ci) if ci else None
            if value is None:
                out.append((machine, None, None, None))
            elif half is None:
                out.append((machine, value * scale, None, None))
            else:
                out.append((machine, value * scale, max(value - half, 0) * scale,
                            (value + half) * scale))
        return out

    cost = [(m, r.get("cost_per_million"), r.get("cost_per_million_low"),
             r.get("cost_per_million_high")) for m, r in chosen]
    panels = [(f"energy per {unit}", "mJ", around("energy_per_sample_j", 1e3,
                                                  "energy_per_sample_ci95_j")),
              ("latency p99", "ms", around("latency_p99_s", 1e3)),
              ("throughput", f"{unit}s/s", around("throughput_per_s", 1,
                                                  "throughput_ci95_per_s")),
              (f"cost per million {unit}s", "currency", cost)]
    return [p for p in panels if any(b[1] is not None for b in p[2])]


def whiskers(bars: list[Bar]) -> tuple[list[float], list[float]]:
    """Each bar's distance down to its low and up to its high (0 where unknown)."""
    down = [0.0 if v is None or lo is None else v - lo for _, v, lo, _ in bars]
    up = [0.0 if v is None or hi is None else hi - v for _, v, _, hi in bars]
    return down, up
