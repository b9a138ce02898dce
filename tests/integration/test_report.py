"""Reports end to end: recommend on a hand-checked store, offline HTML in a real browser,
two stores side by side, MLflow logging and the Python API."""

import os
import re

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.results.schema import EnergyReading, Metric, RunResult, Trial
from optbench.results.store import Store
from optbench.run.parse import parse_recipe
from optbench.run.sweep import Runner

XSS = "<img src=x onerror=alert(1)>"


def known_result(top1, joules_per_trial, samples, latency_s):
    """Three identical 1 s trials: energy per sample is exactly joules / samples."""
    reading = EnergyReading("cpu:package-0", joules_per_trial, 1.0, "measured-counter", "fake")
    trials = [Trial(i, "load", 1.0, samples, (reading,)) for i in (1, 2, 3)]
    return RunResult("ok", quality_metric="top1", metrics=[Metric("top1", top1, "fraction")],
                     latencies_s=[latency_s] * 50, trials=trials,
                     details={"workload": {"sample_unit": "image"}})


def hand_checked_store(path):
    base = parse_recipe({"name": "hand", "model": "fake-mlp", "backends": ["fake"],
                         "variants": {"fp32": [], "int8": ["int8"]},
                         "measure": {"preset": "smoke"}})
    store = Store.open(path)
    store.put_environment("env", {"hostname": "box", "cpu": {"model": "cpu"}})
    values = {  # variant: (top1, J per trial, samples, latency)
        "fp32": (0.98, 10.0, 1000, 0.004),   # 10 mJ / image
        "int8": (0.975, 3.0, 1000, 0.002),   # 3 mJ / image
    }
    for spec in base.expand("cpu"):
        store.add_run(spec.to_dict(), spec.key(), "env", known_result(*values[spec.variant.name]),
                      git_sha=None, git_dirty=None, started_at="t", finished_at="t",
                      wall_s=1.0, log_path=None)
    store.close()


def test_recommend_on_a_hand_checked_store(tmp_path):
    hand_checked_store(tmp_path)
    cli = CliRunner()
    ok = cli.invoke(app, ["recommend", "--out", str(tmp_path), "--max-quality-drop", "0.01"])
    assert ok.exit_code == 0, ok.output
    assert "best: fake int8 bs1" in ok.stdout and "runner-up: fake fp32 bs1" in ok.stdout
    strict = cli.invoke(app, ["recommend", "--out", str(tmp_path), "--max-quality-drop", "0.001"])
    assert strict.exit_code == 0 and "best: fake fp32 bs1" in strict.stdout
    none = cli.invoke(app, ["recommend", "--out", str(tmp_path), "--max-latency-p99-ms", "1"])
    assert none.exit_code == 1
    assert "nothing satisfies the constraints" in none.stdout
    assert "latency p99 4 ms above 1 ms" in none.stdout
    bad = cli.invoke(app, ["recommend", "--out", str(tmp_path), "--objective", "speed"])
    assert bad.exit_code == 2 and "unknown objective" in bad.stderr


def test_report_lists_carbon_and_cost(tmp_path):
    hand_checked_store(tmp_path)
    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path), "--region", "france",
                                      "--pue", "1.5", "--price-per-kwh", "0.2"])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "hand" / "report.md").read_text()
    assert "CO2: france: 56 gCO2e/kWh (owid-2023 table); PUE 1.5 (user-supplied)" in markdown
    # 3 mJ/image -> 3 J per 1,000 -> x1.5 PUE -> 1.25e-6 kWh x 56 g = 7e-5 g = 70 µg, in a
    # unit that reads (the header says which); cost 2.5e-7
    assert "µgCO2e/1k images" in markdown and "| 70 |" in markdown
    assert "7e-05" not in markdown and "2.5e-07" in markdown
    assert "**Recommendation** (objective energy): **fake int8 bs1 (cpu)**" in markdown
    # one column list for both tables: Δ p99 and the legend in each
    page = (tmp_path / "hand" / "index.html").read_text()
    for text in ("Δ p99", "not distinguishable (energy)", "Fronts: E = energy vs quality"):
        assert text in markdown and text in page


@pytest.fixture(scope="module")
def markup_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("markup")
    recipe = parse_recipe({"name": "markup", "model": "fake-mlp",
                           "backends": ["fake", {"fake": {"latency_s": 0.0001}}],
                           "variants": {XSS: [], "int8 <b>bold</b>": ["int8"]},
                           "measure": {"preset": "smoke"}})
    Runner(out).run(recipe)
    return out


def test_html_is_self_contained_and_escapes_names(markup_store):
    result = CliRunner().invoke(app, ["report", "--out", str(markup_store)])
    assert result.exit_code == 0, result.output
    page = (markup_store / "markup" / "index.html").read_text()
    assert "Plotly" in page and not re.search(r"<script[^>]+src=", page)
    # nothing is loaded from elsewhere (the Plotly bundle merely mentions map-tile URLs)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?https?:", page)
    assert XSS not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>bold</b>" not in page


def test_html_draws_in_headless_chromium_without_script_errors(markup_store):
    from optbench.report.screenshot import chromium_path

    required = os.environ.get("OPTBENCH_REQUIRE_BROWSER") == "1"
    try:
        import playwright  # noqa: F401
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed")
    if chromium_path() is None:
        if required:
            pytest.fail("OPTBENCH_REQUIRE_BROWSER=1 but no Chromium (apt-get install chromium)")
        pytest.skip("no Chromium: apt-get install chromium")
    from optbench.report.screenshot import check_page

    CliRunner().invoke(app, ["report", "--out", str(markup_store)])
    png = markup_store / "markup" / "screenshot.png"
    check = check_page(markup_store / "markup" / "index.html", png)
    assert check.errors == [] and check.dialogs == [], (check.errors, check.dialogs)
    assert check.plots_drawn >= 5 and check.plot_divs >= 5
    assert XSS in check.text  # shown as text
    assert png.stat().st_size > 10_000


def test_two_stores_side_by_side(tmp_path, markup_store):
    hand_checked_store(tmp_path / "other")
    result = CliRunner().invoke(app, ["report", "--out", str(markup_store), "--out",
                                      str(tmp_path / "other"), "--dest", str(tmp_path / "both"),
                                      "--name", "both"])
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "both" / "both" / "report.md").read_text()
    assert "| machine |" in markdown and "box (cpu)" in markdown


def test_mlflow_logs_runs_once(markup_store, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    cli = CliRunner()
    first = cli.invoke(app, ["report", "--out", str(markup_store), "--mlflow-uri", uri])
    assert first.exit_code == 0, first.output
    assert "mlflow: 4 runs logged, 0 already there" in first.stderr
    again = cli.invoke(app, ["report", "--out", str(markup_store), "--mlflow-uri", uri])
    assert "mlflow: 0 runs logged, 4 already there" in again.stderr
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("optbench")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`optbench.uid` LIKE '%'")
    assert len(runs) == 4
    run = runs[0]
    assert run.data.params["model"] == "fake-mlp"
    assert "energy_per_sample_j" in run.data.metrics
    assert "quality.top1_agreement" in run.data.metrics
    parents = client.search_runs([experiment.experiment_id],
                                 filter_string="attributes.run_name LIKE 'report%'")
    artifacts = [a.path for a in client.list_artifacts(parents[0].info.run_id, "report")]
    assert "report/index.html" in artifacts and "report/report.md" in artifacts


def test_python_api_dataframe(markup_store):
    import optbench.api as ob

    df = ob.runs(markup_store)
    assert len(df) == 4 and {"backend", "variant", "energy_per_sample_j"} <= set(df.columns)
    (rec,) = ob.recommend(markup_store, objective="latency")
    assert rec.best is not None


def test_break_even_is_hand_checkable_and_the_report_shows_it(tmp_path):
    """fp32: 10 mJ/image; pruned: 4 mJ/image after 30 J of fine-tuning -> 30 / 0.006 = 5,000
    inferences to repay; a variant with no saving never repays."""
    base = parse_recipe({"name": "hand", "model": "fake-mlp", "backends": ["fake"],
                         "variants": {"fp32": [], "pruned": ["int8"], "worse": ["int8"]},
                         "measure": {"preset": "smoke"}})
    store = Store.open(tmp_path)
    store.put_environment("env", {"hostname": "box", "cpu": {"model": "cpu"}})
    made = {"energy_j": 30.0, "energy_method": "measured-counter", "seconds": 12.0,
            "budget_exhausted": False, "transform": "prune-structured"}
    values = {"fp32": (0.98, 10.0, ()), "pruned": (0.975, 4.0, (made,)),
              "worse": (0.97, 12.0, ({**made, "energy_method": "estimated"},))}
    for spec in base.expand("cpu"):
        top1, joules, training = values[spec.variant.name]
        result = known_result(top1, joules, 1000, 0.003)
        lineage = [] if not training else ["prune(structured,0.5)"]
        result.artifact.update(precision="fp32", lineage=lineage, training=list(training),
                               parameters=1000 if not training else 250)
        store.add_run(spec.to_dict(), spec.key(), "env", result, git_sha=None, git_dirty=None,
                      started_at="t", finished_at="t", wall_s=1.0, log_path=None)
    store.close()
    cli = CliRunner()
    rows = {r["variant"]: r for r in __import__("json").loads(cli.invoke(
        app, ["export", "--format", "json", "--out", str(tmp_path)]).stdout)}
    assert rows["pruned"]["break_even_samples"] == pytest.approx(5000)
    assert rows["pruned"]["training_energy_j"] == 30.0
    assert rows["pruned"]["training_energy_method"] == "measured-counter"
    assert rows["worse"]["break_even_samples"] is None
    assert rows["worse"]["break_even_note"] == "never: no per-sample energy saving"
    assert rows["worse"]["training_energy_method"] == "estimated"
    assert rows["fp32"]["break_even_samples"] is None and rows["fp32"]["training"] == []
    assert cli.invoke(app, ["report", "--out", str(tmp_path)]).exit_code == 0
    report = (tmp_path / "hand" / "report.md").read_text()
    assert "| fake | pruned | prune(structured,0.5) | 250 |" in report
    assert "30 (measured-counter) | 12 | 5,000 |" in report
    assert "never: no per-sample energy saving" in report
    assert "Unstructured pruning leaves" not in report  # nothing unstructured here
    page = (tmp_path / "hand" / "index.html").read_text()
    assert "What each model cost to make" in page and "5,000" in page
