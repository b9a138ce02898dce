"""`optbench search` end to end on the fake backend: trials are ordinary runs in the store,
the search report is written, and --resume continues the study without measuring again."""

import json

import yaml
from typer.testing import CliRunner

from optbench.cli import app
from optbench.results.store import Store

RECIPE = {"name": "fake-search", "model": "fake-mlp", "backends": ["fake"],
          "variants": {"fp32": [], "int8": ["int8"]},
          "axes": {"fake.latency_s": [0.0, 0.002]},
          "sweep": {"batch_sizes": [1, 4]}, "measure": {"preset": "smoke", "timeout_s": 60}}


def test_search_measures_trials_as_runs_and_resumes(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "out"
    args = ["search", str(path), "--out", str(out), "--max-quality-drop", "0.5", "--seed", "1"]
    first = CliRunner().invoke(app, [*args, "--trials", "2"])
    assert first.exit_code == 0, first.output
    assert "2 of 8 configurations measured" in first.output
    with Store.open(out, readonly=True) as store:
        assert len(store.runs()) == 2  # a trial is an ordinary row
    report = json.loads((out / "fake-search" / "search-fake-search.json").read_text())
    assert report["trials"][0]["baseline"] and len(report["trials"]) == 2
    assert report["spent_bench_energy_j"] > 0 and report["front"]
    assert (out / "fake-search" / "search-fake-search-hypervolume.png").stat().st_size > 0
    assert "## Front found" in (out / "fake-search" / "search-fake-search.md").read_text()
    assert (out / "fake-search" / "report.md").is_file()  # the usual report, no special case

    again = CliRunner().invoke(app, [*args, "--trials", "3"])
    assert again.exit_code == 2 and "--resume" in again.output

    resumed = CliRunner().invoke(app, [*args, "--trials", "3", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    with Store.open(out, readonly=True) as store:
        assert len(store.runs()) == 3  # one more measured, the first two not again
    report = json.loads((out / "fake-search" / "search-fake-search.json").read_text())
    assert len(report["trials"]) == 3
