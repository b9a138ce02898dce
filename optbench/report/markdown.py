"""The Markdown report: environment, boundary, recommendation, tables, fronts, provenance."""

from __future__ import annotations

from typing import Any

from optbench.carbon import CarbonSettings
from optbench.report.analysis import Group, best_first, front_marks, generative, measured
from optbench.report.data import ReportData
from optbench.report.recommend import Recommendation, label
from optbench.report.text import (
    BOUNDARY,
    QUALITY_NOTES,
    SPARSITY_NOTE,
    break_even_unit,
    environment_summary,
    fmt,
    making_cells,
    making_head,
    mentions_unstructured,
    packages_summary,
    pct,
    provenance,
    run_label,
    shows_making,
)


def cell(value: Any) -> str:
    """Text for a Markdown table cell: pipes and newlines cannot break the table."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(data: ReportData, groups: list[Group], recs: list[Recommendation],
                    carbon: CarbonSettings, figures: dict[str, list[str]]) -> str:
    lines = ["# optbench report", ""]
    for eid, env in data.environments.items():
        lines += [f"Environment `{eid}`: {environment_summary(env)}.",
                  f"Packages: {packages_summary(env)}.", ""]
    lines += [f"> {BOUNDARY}", "", f"CO2: {carbon.describe()}. Energy figures are never "
              "scaled by PUE; CO2 and cost are derived from them.", ""]
    for group, rec in zip(groups, recs):
        lines += group_section(group, rec, figures.get(f"{group.model}|{group.metric}", []))
    others = [r for r in data.rows if r["status"] != "ok"]
    if others:
        lines += ["## Skipped and failed", "", "| model | backend | variant | batch | status | "
                  "reason |", "|---|---|---|---|---|---|"]
        lines += [f"| {cell(r['model'])} | {cell(r['backend'])} | {cell(r['variant'])} | "
                  f"{r['batch_size']} | {r['status']} | {cell(r['reason'] or '')} |"
                  for r in others]
        lines.append("")
    if not data.rows:
        lines.append("The store holds no runs yet.")
    return "\n".join(lines) + "\n"


def recommendation_lines(rec: Recommendation) -> list[str]:
    c = rec.constraints
    asked = [f"objective {c.objective}"]
    if c.max_quality_drop is not None:
        asked.append(f"quality drop at most {c.max_quality_drop:g}")
    if c.max_latency_p99_s is not None:
        asked.append(f"latency p99 at most {c.max_latency_p99_s * 1e3:g} ms")
    lines = [f"**Recommendation** ({', '.join(asked)}): "]
    if rec.best is None:
        lines[0] += "nothing satisfies the constraints."
        lines += [f"- {cell(run_label(r))}: {cell(why)}" for r, why in rec.rejected]
        return [*lines, ""]
    lines[0] += f"**{cell(label(rec.best))}**."
    lines += [f"- {cell(reason)}" for reason in rec.reasons]
    for other in rec.runners_up:
        lines.append(f"- runner-up: {cell(label(other))}")
    return [*lines, ""]


def group_section(group: Group, rec: Recommendation, figures: list[str]) -> list[str]:
    unit, metric = group.unit, group.metric
    split = any(r["energy_gpu_per_sample_j"] is not None for r in group.rows)
    envs = any(r.get("env_label") for r in group.rows)
    priced = any(r.get("cost_per_1000") is not None for r in group.rows)
    lines = [f"## {cell(group.model)}: {metric}", "",
             f"Quality: {QUALITY_NOTES.get(metric, metric)}.", ""]
    for weights in sorted({r["weights"] for r in group.rows if r.get("weights_trained") is False}):
        lines.append(f"Weights: {cell(weights)} - accuracy cannot be judged; fidelity is.")
        lines.append("")
    if group.baseline is not None:
        lines += [f"Baseline for deltas: {cell(run_label(group.baseline))}.", ""]
    lines += recommendation_lines(rec)
    text = generative(group)
    head = (("| machine " if envs else "") +
            f"| backend | variant | batch | device | {metric} | Δq | p50 ms | p99 ms | "
            + ("TTFT ms | TPOT ms | req/s | " if text else "") +
            f"{unit}/s | energy/{unit} mJ (95% CI) | ΔE |" + (" GPU mJ | CPU mJ |" if split
                                                                 else "")
            + " method | gCO2e/1k |" + (" cost/1k |" if priced else "")
            + " fronts | ≈ energy |")
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in best_first(group):
        lines.append(table_row(r, group, split, envs, priced))
    lines += ["", "Fronts: E = energy vs quality, L = latency p99 vs quality, T = throughput "
              "vs quality, " + ("F = time to first token vs quality, P = time per output "
                                "token vs quality, " if text else "")
              + "3 = non-dominated in (energy, latency p99, quality). ≈ lists "
              "configurations whose 95% energy intervals overlap (not distinguishable).", ""]
    if shows_making(group.rows):
        lines += making_lines(group.rows)
    lines += [f"![{p}]({p})" for p in figures if p.endswith(".png")] + [""]
    if any(not measured(r) for r in group.rows):
        lines += ["Hollow markers: estimated energy (its front is computed separately; a "
                  "point is as strong as its weakest channel).", ""]
    lines += ["Provenance:", ""]
    lines += [f"- {cell(run_label(r))}: {cell(provenance(r))}" for r in group.rows]
    return [*lines, ""]


def table_row(r: dict[str, Any], group: Group, split: bool, envs: bool, priced: bool) -> str:
    energy = fmt(r["energy_per_sample_j"], 1e3)
    if r["energy_per_sample_ci95_j"] is not None:
        energy += f" ± {fmt(r['energy_per_sample_ci95_j'], 1e3, 2)}"
    if r["energy_per_sample_j"] is None and r.get("energy_reason"):
        energy = f"- ({cell(r['energy_reason'])})"
    delta = r.get("delta", {})
    marks = front_marks(r, group)
    same = ", ".join(run_label(group.by_id(i)) for i in group.overlaps.get(r["run_id"], []))
    dq = delta.get("quality")
    cols = ([cell(r["env_label"])] if envs else []) + [
        cell(r["backend"]), cell(r["variant"]), str(r["batch_size"]), r["device"],
        fmt(r["quality_value"], 1, 4), "-" if dq is None else f"{dq:+.4f}",
        fmt(r["latency_p50_s"], 1e3), fmt(r["latency_p99_s"], 1e3)]
    if generative(group):
        cols += [fmt(r.get("ttft_p50_s"), 1e3), fmt(r.get("tpot_p50_s"), 1e3),
                 fmt(r.get("requests_per_s"))]
    cols += [fmt(r["throughput_per_s"]), energy, pct(delta.get("energy"))]
    if split:
        cols += [fmt(r["energy_gpu_per_sample_j"], 1e3), fmt(r["energy_cpu_per_sample_j"], 1e3)]
    cols += [r["energy_method"] or "-", fmt(r["co2_g_per_1000"])]
    if priced:
        cols.append(fmt(r.get("cost_per_1000")))
    cols += [marks, cell(same)]
    return "| " + " | ".join(cols) + " |"


def making_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What each model is, what it cost to make, and when that energy is paid back."""
    head = making_head(rows)
    lines = [f"What each model is and what it cost to make. Break-even: {break_even_unit(rows)} "
             "after which its per-sample energy saving over the same backend's untransformed "
             "fp32 run repays its training energy.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["backend"], r["variant"], r["batch_size"])):
        lines.append("| " + " | ".join(cell(c) for c in making_cells(r)) + " |")
    lines.append("")
    if mentions_unstructured(rows):
        lines += [SPARSITY_NOTE, ""]
    return lines
