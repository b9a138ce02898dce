"""The Markdown report: environment, boundary, recommendation, tables, fronts, provenance,
and for serving runs their load curves."""

from __future__ import annotations

from typing import Any

from optbench.carbon import CarbonSettings
from optbench.report.analysis import Group, best_first, measured
from optbench.report.columns import (
    fronts_legend,
    serving_cells,
    serving_head,
    table_cells,
    table_columns,
    table_head,
)
from optbench.report.data import ReportData
from optbench.report.families import classic_line
from optbench.report.fleet import (
    FLEET_NOTE,
    NO_CLOSED_LOOP,
    RATE_NOTE,
    FleetView,
    fleet_cells,
    fleet_head,
    rate_head,
    rate_rows,
)
from optbench.report.recommend import Recommendation, quality_gates
from optbench.report.serving import (
    SERVING_NOTE,
    ServingView,
    asked_text,
    crossover_lines,
    max_rate_text,
    runner_up_text,
)
from optbench.report.significance import significance_lines
from optbench.report.text import (
    BOUNDARY,
    FAILED_HEAD,
    QUALITY_NOTES,
    SPARSITY_NOTE,
    break_even_unit,
    environment_summary,
    failed_cells,
    making_cells,
    making_head,
    making_order,
    mentions_unstructured,
    packages_summary,
    provenance,
    run_label,
    serving_label,
    shows_making,
)

# Every name in the report is user-given (recipe, model, variant, backend options, machine
# labels, failure reasons), and Markdown viewers render inline HTML and links: `&` and `<`
# become entities (no tag, no entity, no autolink can start), `[` and `]` are escaped (no
# link or remote image), `|` cannot end a table cell and a newline cannot end a line.
ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", "[": "\\[", "]": "\\]", "|": "\\|",
                         "\n": " ", "\r": " "})


def cell(value: Any) -> str:
    """User-given text for any place in the report (a table cell, a heading, a list item):
    shown as the text it is, never as markup (see ESCAPES)."""
    return str(value).translate(ESCAPES)


def code(value: Any) -> str:
    """Text inside a `code span`: shown literally, so only a backtick could end it."""
    return " ".join(str(value).replace("`", "'").split())


def table_lines(head: list[str] | tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """A Markdown table; every header and cell escaped."""
    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "| " + " | ".join(cell(c) for c in cells) + " |"

    return [line(head), "|" + "---|" * len(head), *(line(r) for r in rows)]


def render_markdown(data: ReportData, groups: list[Group], recs: list[Recommendation],
                    carbon: CarbonSettings, figures: dict[str, list[str]],
                    serving: dict[str, ServingView] | None = None,
                    fleet: dict[str, FleetView] | None = None) -> str:
    """The report; `figures` by group key (`model|metric`, serving ones under
    `model|metric|serving`, fleet ones under `model|metric|fleet`), `serving` the groups'
    serving views and `fleet` their machines side by side, by the same key."""
    lines = ["# optbench report", ""]
    for eid, env in data.environments.items():
        lines += [f"Environment `{code(eid)}`: {cell(environment_summary(env))}.",
                  f"Packages: {cell(packages_summary(env))}.", ""]
    lines += [f"> {BOUNDARY}", "", f"CO2: {carbon.describe()}. Energy figures are never "
              "scaled by PUE; CO2 and cost are derived from them.", ""]
    for group, rec in zip(groups, recs):
        key = f"{group.model}|{group.metric}"
        lines += group_section(group, rec, figures.get(key, []))
        if serving and key in serving:
            lines += serving_lines(serving[key], figures.get(f"{key}|serving", []))
        if fleet and key in fleet:
            lines += fleet_lines(fleet[key], figures.get(f"{key}|fleet", []))
    others = [r for r in data.rows if r["status"] != "ok"]
    if others:
        lines += ["## Skipped and failed", "",
                  *table_lines(FAILED_HEAD, [failed_cells(r) for r in others])]
        lines.append("")
    if not data.rows:
        lines.append("The store holds no runs yet.")
    return "\n".join(lines) + "\n"


def recommendation_lines(rec: Recommendation) -> list[str]:
    c = rec.constraints
    asked = [f"objective {c.objective}"]
    asked.extend(quality_gates(c))
    if c.max_latency_p99_s is not None:
        asked.append(f"latency p99 at most {c.max_latency_p99_s * 1e3:g} ms")
    lines = [f"**Recommendation** ({', '.join(asked)}): "]
    if rec.best is None:
        lines[0] += "nothing satisfies the constraints."
        lines += [f"- {cell(run_label(r, short=True))}: {cell(why)}" for r, why in rec.rejected]
        return [*lines, ""]
    lines[0] += f"**{cell(run_label(rec.best))}**."
    lines += [f"- {cell(reason)}" for reason in rec.reasons]
    for other in rec.runners_up:
        lines.append(f"- runner-up: {cell(run_label(other))}")
    return [*lines, ""]


def group_section(group: Group, rec: Recommendation, figures: list[str]) -> list[str]:
    metric = group.metric
    lines = [f"## {cell(group.model)}: {cell(metric)}", "",
             f"Quality: {cell(QUALITY_NOTES.get(metric, metric))}.", ""]
    if group.models[1:]:
        lines += [f"Models on these fronts, judged on the same samples: "
                  f"{cell(', '.join(group.models))}.", ""]
    for weights in sorted({r["weights"] for r in group.rows if r.get("weights_trained") is False}):
        lines.append(f"Weights: {cell(weights)} - accuracy cannot be judged; fidelity is.")
        lines.append("")
    if group.baseline is not None:
        lines += [f"Baseline for deltas: {cell(run_label(group.baseline, short=True))}.", ""]
    lines += recommendation_lines(rec)
    shallow = classic_line(group)
    if shallow:
        lines += [cell(shallow), ""]
    columns = table_columns(group)
    lines += table_lines(table_head(columns, group),
                         [table_cells(columns, r, group) for r in best_first(group)])
    lines += ["", fronts_legend(group), ""]
    ties = significance_lines(group)
    if ties:
        lines += [cell(ties[0]), "", *(cell(t) for t in ties[1:]), ""]
    if shows_making(group.rows):
        lines += making_lines(group.rows)
    lines += [f"![{p}]({p})" for p in figures if p.endswith(".png")] + [""]
    if any(not measured(r) for r in group.rows):
        lines += ["Hollow markers: estimated energy (its front is computed separately; a "
                  "point is as strong as its weakest channel).", ""]
    if any(r.get("valid") is False for r in group.rows):
        lines += ["Hollow markers ringed in red: the run failed a validity check (kept and "
                  "shown, see the validity column).", ""]
    lines += ["Provenance:", ""]
    lines += [f"- {cell(run_label(r, short=True))}: {cell(provenance(r))}" for r in group.rows]
    return [*lines, ""]


def making_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What each model is, what it cost to make, and when that energy is paid back."""
    head = making_head(rows)
    lines = [f"What each model is and what it cost to make. Break-even: {break_even_unit(rows)} "
             "after which its per-sample energy saving over the same backend's untransformed "
             "fp32 run repays its training energy.", "",
             *table_lines(head, [making_cells(r) for r in making_order(rows)]), ""]
    if mentions_unstructured(rows):
        lines += [SPARSITY_NOTE, ""]
    return lines


def choice_lines(view: ServingView) -> list[str]:
    """The serving choice at the asked rate, its reasons, runners-up and rejections."""
    choice = view.choice
    if choice is None:
        return []
    lines = [f"**Recommendation** ({asked_text(choice.constraints)}): "]
    if choice.best is None:
        lines[0] += "nothing satisfies the constraints."
    else:
        lines[0] += f"**{cell(serving_label(choice.best))}**."
        lines += [f"- {cell(reason)}" for reason in choice.reasons]
        lines += [f"- runner-up: {cell(runner_up_text(choice, r))}" for r in choice.runners_up]
    lines += [f"- not chosen: {cell(serving_label(r, short=True))}: {cell(why)}"
              for r, why in choice.rejected]
    return [*lines, ""]


def serving_lines(view: ServingView, figures: list[str]) -> list[str]:
    """A group's serving section: choice at --rate, the load table, the two load figures,
    crossovers of the energy curves in words, and each configuration's max rate."""
    group = view.group
    lines = [f"### {cell(group.model)}: serving", "", SERVING_NOTE, ""]
    lines += choice_lines(view)
    lines += table_lines(serving_head(group), [serving_cells(r, group) for r in view.rows])
    lines += [""] + [f"![{p}]({p})" for p in figures if p.endswith(".png")] + [""]
    if any(c.scenario != "server" for c in view.configurations):
        lines += ["Single-stream, multi-stream and offline runs set their own pace: they have "
                  "no offered rate, so they are in the table only.", ""]
    lines += ["Where the energy-per-request curves cross (linear interpolation between "
              "measured rates, over the rates both configurations measured unsaturated):", ""]
    lines += [f"- {cell(line)}" for line in crossover_lines(view.configurations,
                                                           view.crossovers)]
    lines += ["", "Highest offered rate that held the latency bound (rate search):", ""]
    lines += [f"- {cell(max_rate_text(c))}" for c in view.configurations]
    return [*lines, ""]


def fleet_lines(view: FleetView, figures: list[str]) -> list[str]:
    """Machines side by side: each machine's choice and cost, what they say, the same at
    the asked rate, and other processes' CPU on each machine's meters."""
    group = view.group
    lines = [f"### {cell(group.model)}: machines side by side", ""]
    if view.closed_loop:
        lines += [FLEET_NOTE, ""]
        lines += table_lines(fleet_head(view), [fleet_cells(m) for m in view.machines])
        lines += [""] + [f"- {cell(line)}" for line in view.findings] + [""]
        lines += [f"![{p}]({p})" for p in figures if p.endswith(".png")] + [""]
    elif not view.at_rate:
        lines += [NO_CLOSED_LOOP, ""]
    if view.at_rate:
        lines += [RATE_NOTE, "", *table_lines(rate_head(view), rate_rows(view)), ""]
        lines += [f"- {cell(line)}" for line in view.rate_findings] + [""]
    if view.ray_cost:
        lines += ["Other processes on each machine's meters (an executor's daemons, such "
                  "as Ray's, among them; docs/fleet.md):", ""]
        lines += [f"- {cell(line)}" for line in view.ray_cost] + [""]
    return lines
