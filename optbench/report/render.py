"""Render a store as a Markdown report with PNG Pareto figures.

Fronts: energy per sample vs quality and latency p99 vs quality, per model and quality
metric. Energy figures keep their provenance: estimated points are drawn hollow and get a
front of their own, so an estimate never mixes unmarked into a measured front.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from optbench.carbon import CarbonSettings, carbon_settings
from optbench.report.pareto import pareto_front
from optbench.results.store import Store, StoredRun
from optbench.results.summary import summarize_run

log = logging.getLogger(__name__)

BOUNDARY = (
    "Energy boundary: on-board sensors only (GPU board, CPU package, DRAM) where counters "
    "exist; wall power (PSU, fans, network) is outside it. Figures labelled `estimated` are "
    "modelled from CPU time and a TDP, not measured, and carry a wide band."
)
QUALITY_NOTES = {
    "top1": "top-1 accuracy on held-out labelled data",
    "top1_agreement": "top-1 agreement with the fp32 reference model on the same inputs "
                      "(no labels, or random weights: this is fidelity, not accuracy)",
}


def latest_runs(runs: Iterable[StoredRun]) -> list[StoredRun]:
    """The newest run of each (spec, environment): reruns replace older results in reports."""
    latest: dict[tuple[str, str], StoredRun] = {}
    for run in runs:
        latest[(run.spec_key, run.env_id)] = run
    return sorted(latest.values(), key=lambda r: r.id)


def measured(row: dict[str, Any]) -> bool:
    return str(row.get("energy_method", "")).startswith("measured")


def provenance_groups(rows: list[dict[str, Any]], x_key: str) -> list[list[dict[str, Any]]]:
    """Energy points split into measured and estimated; other axes form one group."""
    if x_key != "energy_per_sample_j":
        return [rows]
    return [[r for r in rows if measured(r)], [r for r in rows if not measured(r)]]


def fronts(rows: list[dict[str, Any]], x_key: str) -> set[int]:
    """Run ids on the (x minimised, quality optimised) front, one front per provenance group."""
    pts = [r for r in rows if r.get(x_key) is not None and r.get("quality_value") is not None]
    on_front: set[int] = set()
    for group in provenance_groups(pts, x_key):
        if not group:
            continue
        senses = ("min", "max" if group[0]["quality_higher_is_better"] else "min")
        idx = pareto_front([(r[x_key], r["quality_value"]) for r in group], senses)
        on_front |= {group[i]["run_id"] for i in idx}
    return on_front


def fmt(value: Any, scale: float = 1.0, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value * scale:.{digits}g}"


def cell(value: Any) -> str:
    """Text for a Markdown table cell: pipes and newlines cannot break the table."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(store: Store, out_dir: Path, carbon: CarbonSettings | None = None) -> Path:
    """Write report.md and figures/*.png under `out_dir`; returns the Markdown path."""
    carbon = carbon or carbon_settings()
    runs = latest_runs(store.runs())
    rows = [summarize_run(r, carbon) for r in runs]
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    lines = ["# optbench report", ""]
    for eid in sorted({r.env_id for r in runs}):
        lines += environment_lines(store.environment(eid), eid)
    lines += [f"> {BOUNDARY}", "", f"CO2: {carbon.describe()}. Energy figures are never "
              "scaled by PUE; CO2 is derived from them.", ""]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok":
            groups[(row["model"], row["quality_metric"])].append(row)
    for (model, metric), group in groups.items():
        lines += group_section(model, metric, group, figures)
    others = [r for r in rows if r["status"] != "ok"]
    if others:
        lines += ["## Skipped and failed", "", "| model | backend | variant | batch | status | "
                  "reason |", "|---|---|---|---|---|---|"]
        lines += [f"| {cell(r['model'])} | {cell(r['backend'])} | {cell(r['variant'])} | "
                  f"{r['batch_size']} | {r['status']} | {cell(r['reason'] or '')} |"
                  for r in others]
        lines.append("")
    if not rows:
        lines.append("The store holds no runs yet.")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def group_section(model: str, metric: str, group: list[dict[str, Any]],
                  figures: Path) -> list[str]:
    """Table, fronts and provenance of one model judged by one quality metric."""
    energy_front = fronts(group, "energy_per_sample_j")
    latency_front = fronts(group, "latency_p99_s")
    unit = group[0]["sample_unit"]
    split = any(r["energy_gpu_per_sample_j"] is not None for r in group)
    lines = [f"## {cell(model)}: {metric}", "", f"Quality: {QUALITY_NOTES.get(metric, metric)}.",
             ""]
    for weights in sorted({r["weights"] for r in group if r.get("weights_trained") is False}):
        lines.append(f"Weights: {cell(weights)} - accuracy cannot be judged; fidelity is.")
    head = (f"| backend | variant | batch | device | {metric} | latency p50 ms | latency p99 ms "
            f"| throughput {unit}/s | energy/{unit} mJ (95% CI) |"
            + (" GPU mJ | CPU mJ |" if split else "")
            + f" method | flags | gCO2e/1k {unit}s | E-front | L-front |")
    lines += ["", head, "|" + "---|" * (head.count("|") - 1)]
    for r in sorted(group, key=lambda r: (-(r["quality_value"] or 0), r["backend"])):
        energy = fmt(r["energy_per_sample_j"], 1e3)
        if r["energy_per_sample_ci95_j"] is not None:
            energy += f" ± {fmt(r['energy_per_sample_ci95_j'], 1e3, 2)}"
        if r["energy_per_sample_j"] is None and r["energy_reason"]:
            energy = f"- ({cell(r['energy_reason'])})"
        parts = (f" {fmt(r['energy_gpu_per_sample_j'], 1e3)} | "
                 f"{fmt(r['energy_cpu_per_sample_j'], 1e3)} |") if split else ""
        lines.append(
            f"| {cell(r['backend'])} | {cell(r['variant'])} | {r['batch_size']} | {r['device']} "
            f"| {fmt(r['quality_value'], 1, 4)} | {fmt(r['latency_p50_s'], 1e3)} | "
            f"{fmt(r['latency_p99_s'], 1e3)} | {fmt(r['throughput_per_s'])} | {energy} |{parts} "
            f"{r['energy_method'] or '-'} | {cell(r['energy_flags'] or '')} | "
            f"{fmt(r['co2_g_per_1000'])} | {'★' if r['run_id'] in energy_front else ''} | "
            f"{'★' if r['run_id'] in latency_front else ''} |")
    slug = f"{model}-{metric}".replace("/", "_").replace(" ", "_")
    drawn = draw_fronts(group, energy_front, latency_front, figures, slug, metric, unit)
    lines += [""] + [f"![{p.stem}](figures/{p.name})" for p in drawn] + [""]
    if any(not measured(r) for r in group):
        lines += ["Hollow markers: estimated energy (its front is computed separately; a "
                  "point is as strong as its weakest channel).", ""]
    lines += ["Energy channels per configuration:", ""]
    lines += [f"- {cell(r['backend'])} {cell(r['variant'])} bs{r['batch_size']}: "
              f"{cell(r['energy_channels'] or 'none')}" for r in group]
    return [*lines, ""]


def environment_lines(env: dict[str, Any], eid: str) -> list[str]:
    cpu = env.get("cpu", {})
    gpus = env.get("gpus", {}).get("devices", [])
    packages = {k: v for k, v in env.get("packages", {}).items() if v}
    return [
        f"Environment `{eid}`: {cpu.get('model')} ({cpu.get('logical_cpus')} logical CPUs), "
        f"{', '.join(g['name'] for g in gpus) or 'no NVIDIA GPU'}, {env.get('os')} "
        f"{env.get('kernel')}, Python {env.get('python')}, optbench "
        f"{env.get('optbench_version')}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in sorted(packages.items())) + ".",
        "",
    ]


def draw_fronts(
    rows: list[dict[str, Any]], energy_front: set[int], latency_front: set[int],
    figures: Path, slug: str, metric: str, unit: str,
) -> list[Path]:
    """Scatter of every configuration with its front as a step line; one PNG per x axis."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        log.warning("matplotlib not installed: no figures (pip install 'optbench[report]')")
        return []
    drawn = []
    axes = (("energy_per_sample_j", 1e3, f"energy per {unit} (mJ)", energy_front, "energy"),
            ("latency_p99_s", 1e3, "latency p99 (ms)", latency_front, "latency_p99"))
    for key, scale, label, front, name in axes:
        pts = [r for r in rows if r.get(key) is not None and r.get("quality_value") is not None]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in pts:
            hollow = key == "energy_per_sample_j" and not measured(r)
            x, y = r[key] * scale, r["quality_value"]
            color = "C0" if r["run_id"] in front else "C7"
            if hollow:
                ax.scatter([x], [y], s=60, marker="o", facecolors="none", edgecolors=color)
            else:
                ax.scatter([x], [y], s=60, marker="o" if r["run_id"] in front else "x",
                           color=color)
            ax.annotate(f"{r['backend']} {r['variant']} bs{r['batch_size']}", (x, y),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
        for group in provenance_groups(pts, key):
            line = sorted((r[key] * scale, r["quality_value"]) for r in group
                          if r["run_id"] in front)
            if line:
                estimated = key == "energy_per_sample_j" and not measured(group[0])
                ax.step([p[0] for p in line], [p[1] for p in line], where="post",
                        color="C1" if estimated else "C0", alpha=0.6,
                        label="front (estimated energy)" if estimated else "front")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.set_title(f"{slug}: {name.replace('_', ' ')} vs {metric}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path = figures / f"{slug}-{name}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        drawn.append(path)
    return drawn
