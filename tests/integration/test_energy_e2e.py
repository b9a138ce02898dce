"""Done-when of the energy issue: a powercap tree advancing at a known power, with
wraparounds during the run, gives energy per sample close to the truth end to end
(0.5% on a fake clock in tests/meters/test_rapl.py; REL here, on a real clock)."""

import json
import statistics

import pytest
from typer.testing import CliRunner

from optbench.cli import app
from optbench.results.store import Store
from optbench.testing.powercap import FakePowercap
from optbench.testing.traces import Constant

PACKAGE_W, DRAM_W = 50.0, 5.0
# The meter is exact to 0.5% against the truth on a fake clock (tests/meters/test_rapl.py).
# Here the fake counters are written by a real process on a real clock: on a shared
# 2-vCPU VM that writer is sometimes late by tens of ms (0.8% of a 2 s window seen in a
# full-suite run), which is the fake hardware's error, not the meter's. Allow 1.5%.
REL = 0.015


@pytest.fixture
def powercap(tmp_path, monkeypatch):
    # a 250 J range wraps the package counter every 4.5 s: a wrap or two during the run.
    # The counters update every 2 ms from a real-time process, as hardware would (~1 ms);
    # a 2-vCPU VM cannot keep a 1 kHz writer, the run and the meter's tick all on time.
    fake = FakePowercap(tmp_path / "powercap",
                        {"intel-rapl:0": ("package-0", Constant(PACKAGE_W)),
                         "intel-rapl:0:0": ("core", Constant(30.0)),
                         "intel-rapl:0:1": ("dram", Constant(DRAM_W))},
                        max_range_uj=250_000_000).run(period_s=0.002, process=True)
    monkeypatch.setenv("OPTBENCH_POWERCAP_ROOT", str(fake.root))
    yield fake
    fake.stop()


def test_compare_reports_counter_energy_within_half_a_percent(tmp_path, powercap):
    out = tmp_path / "out"
    cli = CliRunner()
    result = cli.invoke(app, ["compare", "--model", "fake-mlp", "--backends", "fake",
                              "--preset", "quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                         str(out)]).stdout)
    assert row["energy_method"] == "measured-counter"
    assert row["energy_channels"] == "cpu:package-0=measured-counter; dram:0=measured-counter"
    (run,) = Store.open(out).runs()
    # a trial flagged ambiguous_wrap (a read gap longer than the fastest possible wrap) is
    # kept but never used; every trial the statistics use must be within REL of the truth.
    # On a loaded 2-core machine the meter's tick is late by seconds and some of the 3 trials
    # are (rightly) excluded, so only one usable trial is required; the exclusions must say why
    trials = [t for t in run.result.trials if t.phase == "load"]
    gaps = [(t.flags, [(r.flags, r.details.get("max_read_gap_s")) for r in t.readings])
            for t in run.result.trials]
    loads = [t for t in trials if not t.excluded]
    assert len(trials) >= 3 and len(loads) >= 1, gaps
    for trial in trials:
        if trial.excluded:
            assert any("ambiguous_wrap" in r.flags for r in trial.readings), gaps
    wraps = sum(r.wraps for t in run.result.trials for r in t.readings)
    for trial in loads:
        readings = {r.channel: r for r in trial.readings}
        assert set(readings) == {"cpu:package-0", "dram:0"}  # core never added
        truth = sum(w * readings[c].window_s for c, w in
                    (("cpu:package-0", PACKAGE_W), ("dram:0", DRAM_W)))
        assert trial.total_energy_j() == pytest.approx(truth, rel=REL)
    assert wraps >= 1
    # the summary's figure is the median of the usable trials (the mean of two when two)
    truth_per_sample = statistics.median((PACKAGE_W + DRAM_W) * t.readings[0].window_s
                                         / t.samples for t in loads)
    detail = [(t.total_energy_j() / t.samples, t.excluded, [r.flags for r in t.readings])
              for t in loads]
    assert row["energy_per_sample_j"] == pytest.approx(truth_per_sample, rel=REL), detail
    # the idle window is 1 s (preset quick): the fake counter's 2 ms updates, late by a few
    # ms when the machine is busy, allow about 1% there (the load windows are 2 s and more).
    # A window the run flags `contended` (other processes on these cores) promises less: its
    # reads can be late by tens of ms (74 ms seen with both cores kept busy), 10% of 1 s
    idle = next(t for t in run.result.trials if t.phase == "idle")
    idle_rel = 0.1 if "contended" in idle.flags else 0.01
    assert row["idle_power_w"] == pytest.approx(PACKAGE_W + DRAM_W, rel=idle_rel), idle.flags
    report = (out / "compare-fake-mlp" / "report.md").read_text()
    assert "Energy boundary" in report and "measured-counter" in report


def test_without_counters_energy_is_estimated_or_empty_never_zero(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTBENCH_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    cli = CliRunner()
    for flags, out in (([], tmp_path / "est"), (["--no-estimate"], tmp_path / "none")):
        result = cli.invoke(app, ["compare", "--model", "fake-mlp", "--backends", "fake",
                                  "--preset", "smoke", "--out", str(out), *flags])
        assert result.exit_code == 0, result.output
    (est,) = json.loads(cli.invoke(app, ["export", "-f", "json", "--out",
                                         str(tmp_path / "est")]).stdout)
    assert est["energy_method"] == "estimated" and est["energy_per_sample_j"] > 0
    (run,) = Store.open(tmp_path / "est").runs()
    reading = run.result.trials[1].readings[0]
    assert reading.details["formula"] and reading.details["watts_per_thread"] > 0
    assert any("vm-no-rapl" in why for why in run.result.details["meters"][0]["instead_of"])
    (none,) = json.loads(cli.invoke(app, ["export", "-f", "json", "--out",
                                          str(tmp_path / "none")]).stdout)
    assert none["energy_per_sample_j"] is None and none["energy_method"] == "unavailable"
    assert "vm-no-rapl" in none["energy_reason"] and "estimates disabled" in none["energy_reason"]
    db = Store.open(tmp_path / "none").db
    values = [r[0] for r in db.execute("SELECT energy_j FROM energy")]
    assert values and all(v is None for v in values)
