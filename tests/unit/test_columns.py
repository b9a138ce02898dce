"""The column catalogue reaches every output it names, and both run tables agree cell by cell."""

import csv
import html
import io
import re

import pytest

from optbench.report import columns, export, mlflow
from optbench.report.analysis import AXES, analyse
from optbench.report.columns import BY_KEY, COLUMNS, EXPORT_COLUMNS, TABLE, table_cells
from optbench.report.html import table as html_table
from optbench.report.markdown import group_section
from optbench.report.recommend import OBJECTIVES, Constraints, recommend
from optbench.report.text import run_label

# The export contract: these names in this order (new columns may be added, none moved).
EXPORTED = (
    "run_id", "model", "backend", "variant", "batch_size", "device", "status", "reason",
    "quality_metric", "quality_value", "latency_p50_s", "latency_p90_s", "latency_p99_s",
    "latency_mean_s", "latency_device_p50_s", "throughput_per_s", "energy_per_sample_j",
    "energy_per_sample_ci95_j", "energy_per_sample_cov", "energy_trials", "energy_method",
    "energy_channels", "energy_gpu_per_sample_j", "energy_cpu_per_sample_j", "idle_power_w",
    "net_energy_per_sample_j", "energy_flags", "energy_reason", "energy_per_1000_wh",
    "co2_g_per_1000", "carbon_intensity_g_per_kwh", "pue", "cost_per_1000", "price_per_kwh",
    "sample_unit", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "itl_p99_s",
    "requests_per_s", "energy_per_request_j", "new_tokens", "timing_source", "weights",
    "lineage", "parameters", "macs", "model_bytes", "training_energy_j",
    "bench_energy_j", "bench_energy_method", "bench_wall_s",
    "training_energy_method", "training_s", "training_budget_exhausted", "break_even_samples",
    "break_even_note", "precision_path", "env_id", "git_sha", "started_at",
    # serving rows (one per configuration x offered load)
    "scenario", "max_batch", "max_wait_ms", "cache_size", "repeat_skew", "offered_rate_per_s",
    "arrival_rate_per_s", "achieved_rate_per_s", "goodput_per_s", "saturated", "dropped",
    "mean_batch", "cache_hit_rate", "energy_per_request_ci95_j", "net_energy_per_request_j",
    "idle_share", "serving_power_w", "energy_per_token_j", "latency_bound_ms",
    "max_rate_under_bound_per_s", "capacity_per_s", "search_probe",
    "closed_loop_latency_p50_s", "closed_loop_latency_p99_s", "served_agreement",
    "loadgen_validity", "loadgen_latency_p99_s", "serving_errors", "serving_notes", "row_id",
    "batching", "max_rate_is_lower_bound", "completed",
    # issue 15: quality uncertainty, paired significance, validity
    "quality_ci95_low", "quality_ci95_high", "quality_ci_method", "quality_samples",
    "quality_delta", "quality_delta_p_value", "quality_test", "quality_tied",
    "quality_samples_to_resolve", "validity", "machine", "node", "price_per_hour",
    "cost_per_million", "cost_energy_per_million", "cost_machine_per_million",
    "cost_per_million_low", "cost_per_million_high", "foreign_cpu_max_cores",
    # issue 17: classic models beside deep ones
    "model_kind", "model_family", "front",
)


def row(run_id, variant, quality, energy_mj, machine, **extra):
    """A text-generation row with every conditional table column filled, markup in names."""
    base = {
        "run_id": run_id, "status": "ok", "model": "m", "quality_metric": "top1",
        "quality_higher_is_better": True, "sample_unit": "token", "backend": "ort|<b>",
        "variant": variant, "batch_size": 1, "device": "cpu", "env_label": machine,
        "quality_value": quality, "energy_per_sample_j": energy_mj / 1e3,
        "energy_per_sample_ci95_j": 0.1 / 1e3, "energy_reason": "",
        "latency_p50_s": 0.01, "latency_p99_s": 0.02 / run_id, "throughput_per_s": 50.0,
        "ttft_p50_s": 0.003, "tpot_p50_s": 0.001, "requests_per_s": 4.0,
        "energy_gpu_per_sample_j": energy_mj / 2e3, "energy_cpu_per_sample_j": energy_mj / 2e3,
        "energy_method": "measured-counter", "co2_g_per_1000": 0.5, "cost_per_1000": 0.01,
        "cost_per_million": 1.5, "validity": "ok",
    }
    return {**base, **extra}


@pytest.fixture
def group():
    rows = [row(1, "fp32", 0.98, 10.0, "box (cpu)"),
            row(2, "int8 & <i>x</i>", 0.97, 10.05, "gpu|box (H200)"),  # overlaps fp32
            row(3, "int4", 0.96, 0.0, "box (cpu)", energy_method="unavailable",
                energy_per_sample_j=None, energy_per_sample_ci95_j=None,
                energy_reason="no | counters")]
    (g,) = analyse(rows)
    return g


def markdown_rows(lines: list[str]) -> list[list[str]]:
    """The cells of every Markdown table line, unescaped."""
    return [[html.unescape(re.sub(r"\\([|\[\]])", r"\1", c))
             for c in re.split(r" (?<!\\)\| ", line[2:-2])]
            for line in lines if line.startswith("| ")]


def html_rows(page: str) -> list[list[str]]:
    return [[html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr)]
            for tr in re.findall(r"<tr>(.*?)</tr>", page)]


def test_export_columns_keep_their_names_and_order():
    assert EXPORT_COLUMNS == EXPORTED
    assert all(BY_KEY[k].export for k in EXPORTED) and len(BY_KEY) == len(COLUMNS)


def test_export_header_is_the_catalogue(monkeypatch, tmp_path):
    class Data:
        rows = [{k: None for k in EXPORTED} | {"run_id": 1, "extra": "not exported"}]
        serving: list = []

    monkeypatch.setattr("optbench.report.data.load", lambda *a, **k: Data)
    header = next(csv.reader(io.StringIO(export.export_rows(tmp_path, "csv"))))
    assert tuple(header) == EXPORT_COLUMNS


def test_mlflow_names_come_from_the_catalogue():
    assert mlflow.METRICS == tuple(c.key for c in COLUMNS if c.mlflow == "metric")
    assert set(mlflow.METRICS) == {
        "quality_value", "latency_p50_s", "latency_p90_s", "latency_p99_s",
        "latency_device_p50_s", "throughput_per_s", "energy_per_sample_j",
        "energy_per_sample_ci95_j", "energy_gpu_per_sample_j", "energy_cpu_per_sample_j",
        "idle_power_w", "net_energy_per_sample_j", "energy_per_1000_wh", "co2_g_per_1000",
        "cost_per_1000", "quality_ci95_low", "quality_ci95_high", "quality_delta_p_value",
        "cost_per_million"}
    assert set(mlflow.PARAMS) == {"model", "backend", "variant", "batch_size", "device",
                                  "quality_metric", "precision_path", "weights", "recipe",
                                  "energy_method", "energy_channels", "machine"}


def test_plots_axes_and_objectives_lead_with_energy():
    assert [c.plot for c in columns.PLOTTED] == [
        "energy", "latency_p50", "latency_p99", "throughput", "ttft", "tpot", "cost"]
    assert list(AXES) == [c.key for c in columns.PLOTTED]
    assert [c.axis for c in columns.PLOTTED][:2] == ["energy per {unit} (mJ)", "latency p50 (ms)"]
    assert list(OBJECTIVES) == ["energy", "latency", "throughput", "co2", "ttft", "tpot",
                                "cost"]
    assert OBJECTIVES["co2"] == ("co2_g_per_1000", "min", "gCO2e per 1,000 {unit}s")
    assert all(c.sense for c in COLUMNS if c.plot or c.objective)


def test_every_table_column_reaches_both_tables_with_the_same_cells(group):
    rec = recommend(group, Constraints())
    md = markdown_rows(group_section(group, rec, []))
    page = html_rows(html_table(group))
    shown = [c for c in TABLE if c.key != "model"]  # the model: where several share a front
    heads = [c.table.head.format(metric="top1", unit="token", co2_unit="mg") for c in shown]
    assert md[0] == page[0] == heads  # every other conditional column shows for this group
    ordered = sorted(group.rows, key=lambda r: -r["quality_value"])
    assert page[1:] == [table_cells(shown, r, group) for r in ordered]
    assert md[1:] == page[1:]
    assert page[1][-1] == "ort|<b> int8 & <i>x</i> bs1 @ gpu|box (H200)"  # not distinguishable


def test_cells_escape_their_own_way(group):
    page = html_table(group)
    assert "<b>" not in page and "ort|&lt;b&gt;" in page
    assert "int8 &amp; &lt;i&gt;x&lt;/i&gt;" in page and 'class="l est">unavailable' in page
    md = "\n".join(group_section(group, recommend(group, Constraints()), []))
    assert "| ort\\|&lt;b> |" in md and "gpu\\|box (H200)" in md and "<b>" not in md
    assert "- (no \\| counters)" in md and "- (no | counters)" in page


def test_conditional_columns_hide_when_no_row_has_them(group):
    for r in group.rows:
        for key in ("env_label", "ttft_p50_s", "energy_gpu_per_sample_j", "cost_per_1000",
                    "cost_per_million"):
            r[key] = None
    heads = html_rows(html_table(group))[0]
    for hidden in ("machine", "TTFT p50 ms", "TPOT p50 ms", "requests/s", "GPU mJ", "CPU mJ",
                   "cost/1k", "cost/1M tokens"):
        assert hidden not in heads
    assert "F = " not in columns.fronts_legend(group)


def test_fronts_column_and_legend(group):
    marks = {r["run_id"]: columns.front_marks(r, group) for r in group.rows}
    assert marks[1].startswith("E") and marks[3].startswith("L")  # fp32: best energy; int4: p99
    legend = columns.fronts_legend(group)
    assert legend.startswith("Fronts: E = energy vs quality, L = latency p99 vs quality, "
                             "T = throughput vs quality, F = time to first token vs quality")


def test_one_run_label():
    r = {"backend": "ort", "variant": "int8", "batch_size": 4, "device": "cuda"}
    assert run_label(r) == "ort int8 bs4 (cuda)"
    assert run_label(r, short=True) == "ort int8 bs4"
    r["env_label"] = "box (H200)"
    assert run_label(r) == "ort int8 bs4 (cuda on box (H200))"
    assert run_label(r, short=True) == "ort int8 bs4 @ box (H200)"
