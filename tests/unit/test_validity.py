"""Validity checks per run (results/validity.py): each check on crafted trials, pass, fail
and n/a; stores written before the checks existed; a real loop and a real stored run."""

import numpy as np
import pytest

from optbench.measure.contention import CpuContention
from optbench.measure.loop import MeasuredLoop
from optbench.measure.presets import Preset
from optbench.meters.base import MeterContext
from optbench.meters.rapl import RaplMeter
from optbench.results.schema import EnergyReading, RunResult, Trial
from optbench.results.validity import (
    CHECKS,
    FAIL,
    NA,
    PASS,
    Check,
    check_run,
    is_valid,
    validity_text,
)
from optbench.testing.clock import FakeClock
from optbench.testing.powercap import FakePowercap
from optbench.testing.traces import Constant

PKG = "cpu:package-0"
GPU = "gpu:GPU-fake"
RAPL = {"meter": "rapl", "role": "cpu", "min_window_periods": 10,
        "channels": {PKG: {"zone": "intel-rapl:0", "in_total": True, "update_period_s": 0.001,
                           "power_limit_w": 125.0}}}
NVML = {"meter": "nvml", "role": "gpu", "channel": GPU, "update_period_s": 0.1,
        "min_window_periods": 10, "method": "measured-counter"}
ESTIMATE = {"meter": "estimate", "role": "cpu", "channel": "cpu:estimate",
            "update_period_s": 0.01, "method": "estimated"}
STEADY = {"iterations": 100, "seconds": 1.0, "steady": True, "spread": 0.004,
          "tolerance": 0.02, "last_rates_per_s": [100.0, 100.2, 100.4], "blocks": 4}


def r(channel=PKG, watts=50.0, window=2.0, method="measured-counter", flags=(), **details):
    energy = None if method == "unavailable" else watts * window
    return EnergyReading(channel, energy, window, method, "api", flags=tuple(flags),
                         details=details)


def trial(index, phase, readings, window=2.0, samples=None, flags=(), **telemetry):
    samples = (0 if phase == "idle" else 100) if samples is None else samples
    return Trial(index, phase, window, samples, tuple(readings), tuple(flags), telemetry)


def run(trials, warmup=STEADY, meters=(RAPL,), serving=None, status="ok"):
    details = {"meters": list(meters), "warmup": warmup, "protocol": "t"}
    if serving is not None:
        details["serving"] = serving
    return RunResult(status, trials=list(trials), details=details)


def clean_trials(load_w=50.0, idle_w=10.0, **telemetry):
    tel = {"in_call_s": 1.9, "foreign_cpu_cores": 0.01, "foreign_cpu_threshold_cores": 0.05,
           **telemetry}
    return [trial(0, "idle", [r(watts=idle_w, window=1.0)], window=1.0,
                  foreign_cpu_cores=0.0, foreign_cpu_threshold_cores=0.05),
            *(trial(i, "load", [r(watts=load_w)], **tel) for i in (1, 2, 3))]


def by_name(checks):
    return {c.name: c for c in checks}


def test_a_clean_run_passes_every_check():
    checks = check_run(run(clean_trials()))
    assert [c.name for c in checks] == list(CHECKS)
    assert {c.status for c in checks} == {PASS}, checks
    assert validity_text(checks) == "ok" and is_valid(checks)
    c = by_name(checks)
    assert "10 W" in c["power"].detail and "125 W" in c["power"].detail
    assert "0.05" in c["contention"].detail


def test_text_lists_the_failures_with_their_details():
    checks = [Check("warmup", FAIL, "not steady"), Check("windows", PASS, "fine"),
              Check("power", NA, "estimated"), Check("busy", FAIL, "idle 50%")]
    assert validity_text(checks) == "failed: warmup (not steady); busy (idle 50%)"
    assert not is_valid(checks)
    assert is_valid([Check("power", NA, "estimated")])  # n/a fails nothing
    assert checks[0].to_dict() == {"name": "warmup", "status": FAIL, "detail": "not steady"}


# ---------------------------------------------------------------- warm-up
def test_warmup_not_steady_at_the_cap_fails_with_the_spread():
    record = {"iterations": 10, "seconds": 5.0, "steady": False, "spread": 0.12,
              "tolerance": 0.02, "max_s": 5, "last_rates_per_s": [90.0, 100.0, 102.0]}
    c = by_name(check_run(run(clean_trials(), warmup=record)))["warmup"]
    assert c.status == FAIL
    assert "spread 12% > 2%" in c.detail and "5 s cap" in c.detail


def test_warmup_with_too_few_blocks_fails_and_says_why():
    record = {"iterations": 3, "seconds": 0.5, "steady": False, "spread": None,
              "blocks": 2, "max_s": 0.3, "last_rates_per_s": [1.0, 2.0]}
    c = by_name(check_run(run(clean_trials(), warmup=record)))["warmup"]
    assert c.status == FAIL and "2 block(s), 3 needed" in c.detail


def test_warmup_pass_and_na():
    c = by_name(check_run(run(clean_trials())))["warmup"]
    assert c.status == PASS and "0.4%" in c.detail and "tolerance 2%" in c.detail
    assert by_name(check_run(run(clean_trials(), warmup=None)))["warmup"].status == NA


# ---------------------------------------------------------------- windows
def test_window_shorter_than_ten_update_periods_fails():
    trials = [*clean_trials(), trial(4, "load", [r(window=0.005)], window=0.005)]
    c = by_name(check_run(run(trials)))["windows"]
    assert c.status == FAIL
    assert c.detail == ("window 5 ms (load trial 4, cpu:package-0) < 10 x 1 ms rapl "
                        "update period")


def test_windows_use_the_reading_period_and_the_meter_requirement():
    # NVML's 100 ms counter: a 0.5 s window is 5 periods, under the required 10
    trials = [trial(1, "load", [r(GPU, 200.0, window=0.5, update_period_s=0.1)], window=0.5)]
    c = by_name(check_run(run(trials, meters=[NVML])))["windows"]
    assert c.status == FAIL and "10 x 100 ms nvml update period" in c.detail
    # a meter asking for 50 periods: 2 s at 100 ms is not enough
    strict = {**NVML, "min_window_periods": 50}
    trials = [trial(1, "load", [r(GPU, 200.0, window=2.0)])]
    assert by_name(check_run(run(trials, meters=[strict])))["windows"].status == FAIL
    assert by_name(check_run(run(trials, meters=[NVML])))["windows"].status == PASS


def test_windows_flagged_by_the_meter_fail_and_unknown_periods_are_na():
    flagged = [trial(1, "load", [r("cpu:x", flags=["below_resolution"])])]
    c = by_name(check_run(run(flagged, meters=[])))["windows"]
    assert c.status == FAIL and "below" in c.detail
    unknown = [trial(1, "load", [r("fake:trace")])]
    assert by_name(check_run(run(unknown, meters=[{"meter": "trace"}])))["windows"].status == NA


# ---------------------------------------------------------------- power
def test_load_power_below_the_idle_baseline_fails():
    c = by_name(check_run(run(clean_trials(load_w=5.0, idle_w=10.0))))["power"]
    assert c.status == FAIL
    assert "cpu:package-0 5 W in load trial 1 < its idle baseline 10 W" in c.detail
    assert "(+2 more)" in c.detail


def test_power_within_the_tolerances_passes():
    # 5% below idle (the idle_drift bound) and 10% above the cap are still possible
    assert by_name(check_run(run(clean_trials(load_w=9.6))))["power"].status == PASS
    assert by_name(check_run(run(clean_trials(load_w=137.0))))["power"].status == PASS
    assert by_name(check_run(run(clean_trials(load_w=140.0))))["power"].status == FAIL


def test_gpu_power_above_the_enforced_limit_recorded_in_telemetry_fails():
    nvml = {"start": {"power_limit_w": 300.0}, "end": {"power_limit_w": 300.0}}
    trials = [trial(0, "idle", [r(GPU, 60.0)], nvml=nvml),
              trial(1, "load", [r(GPU, 400.0)], nvml=nvml)]
    c = by_name(check_run(run(trials, meters=[NVML])))["power"]
    assert c.status == FAIL and "gpu:GPU-fake 400 W in load trial 1 > its 300 W" in c.detail
    ok = [trial(0, "idle", [r(GPU, 60.0)], nvml=nvml),
          trial(1, "load", [r(GPU, 280.0)], nvml=nvml)]
    c = by_name(check_run(run(ok, meters=[NVML])))["power"]
    assert c.status == PASS and "idle 60 W, limit 300 W" in c.detail


def test_power_checks_the_bound_it_knows_and_says_which_is_missing():
    meters = [{**RAPL, "channels": {PKG: {"update_period_s": 0.001}}}]  # no limit known
    c = by_name(check_run(run(clean_trials(), meters=meters)))["power"]
    assert c.status == PASS and "no power limit known" in c.detail
    no_idle = [t for t in clean_trials() if t.phase == "load"]
    c = by_name(check_run(run(no_idle, meters=meters)))["power"]
    assert c.status == NA and "idle baseline or a power limit" in c.detail


def test_estimated_energy_has_no_power_to_check():
    trials = [trial(0, "idle", [r("cpu:estimate", 0.1, method="estimated")]),
              trial(1, "load", [r("cpu:estimate", 8.0, method="estimated")])]
    c = by_name(check_run(run(trials, meters=[ESTIMATE])))["power"]
    assert c.status == NA and "estimated (cpu:estimate)" in c.detail
    mixed = [trial(0, "idle", [r(GPU, 60.0), r("cpu:estimate", 0.1, method="estimated")]),
             trial(1, "load", [r(GPU, 200.0), r("cpu:estimate", 8.0, method="estimated")])]
    c = by_name(check_run(run(mixed, meters=[NVML, ESTIMATE])))["power"]
    assert c.status == PASS and "estimated, not checked: cpu:estimate" in c.detail


def test_excluded_trials_are_not_judged():
    bad = trial(4, "load", [r(watts=1.0, window=0.001, flags=["ambiguous_wrap"])],
                window=0.001)
    assert {c.status for c in check_run(run([*clean_trials(), bad]))} == {PASS}


# ---------------------------------------------------------------- busy
def test_closed_loop_busy_share():
    c = by_name(check_run(run(clean_trials(in_call_s=1.0))))["busy"]
    assert c.status == FAIL and "50% of its window in the backend's calls < 90%" in c.detail
    c = by_name(check_run(run(clean_trials(in_call_s=1.9))))["busy"]
    assert c.status == PASS and "95%" in c.detail
    old = [Trial(t.index, t.phase, t.window_s, t.samples, t.readings) for t in clean_trials()]
    assert by_name(check_run(run(old)))["busy"].status == NA  # not recorded


def point(rate, mean_batch, saturated=False):
    return {"offered_rate_per_s": rate, "trials": [], "figures": {
        "achieved_rate_per_s": rate, "mean_batch": mean_batch, "saturated": saturated}}


def serving(points, kind="server", max_batch=8, capacity=1000.0):
    return {"scenario": kind, "max_batch": max_batch, "capacity_per_s": capacity,
            "points": points}


def served_busy(s):
    return by_name(check_run(run([trial(0, "idle", [r()])], serving=s)))["busy"]


def test_served_busy_is_batch_fill_or_utilisation_at_the_highest_unsaturated_load():
    # full batches near capacity, then saturation: busy
    c = served_busy(serving([point(100, 1.2), point(700, 6.5), point(1100, 8, True)]))
    assert c.status == PASS and "700 req/s" in c.detail and "6.5 of 8" in c.detail
    assert "1 load(s) saturated" in c.detail
    # the sweep stopped at light loads: the device was never kept busy
    c = served_busy(serving([point(5, 1.0), point(20, 1.1)]))
    assert c.status == FAIL and "14%" in c.detail and "2% of the 1e+03 req/s" in c.detail
    # small batches but most of the capacity served (batch size barely matters on a CPU)
    assert served_busy(serving([point(800, 1.5)])).status == PASS
    # unbatched: utilisation alone
    c = served_busy(serving([point(100, 1.0)], max_batch=1, capacity=400.0))
    assert c.status == FAIL and "25% of the 400 req/s" in c.detail


def test_served_busy_edge_cases():
    assert served_busy(serving([point(900, 8, True)])).status == PASS  # at capacity
    assert served_busy(serving([], kind="offline")).status == NA
    assert served_busy(serving([point(50, 1.0)], kind="single-stream")).status == NA
    assert served_busy({"scenario": "server", "points": [point(5, None)]}).status == NA


# ---------------------------------------------------------------- contention
def test_contention_cpu_and_gpu():
    cpu = clean_trials()
    cpu[2] = trial(2, "load", [r()], flags=["contended"], in_call_s=1.9,
                   foreign_cpu_cores=0.8, foreign_cpu_threshold_cores=0.05)
    c = by_name(check_run(run(cpu)))["contention"]
    assert c.status == FAIL and c.detail == "load trial 2: foreign CPU 0.8 cores > 0.05"
    gpu = [trial(1, "load", [r(GPU, 200.0, flags=["contended"], foreign_pids=[4242])])]
    c = by_name(check_run(run(gpu, meters=[NVML])))["contention"]
    assert c.status == FAIL and "other processes on gpu:GPU-fake (pids 4242)" in c.detail
    clean_gpu = [trial(1, "load", [r(GPU, 200.0)])]
    c = by_name(check_run(run(clean_gpu, meters=[NVML])))["contention"]
    assert c.status == PASS and "no other process on the GPU" in c.detail


def test_contention_unknown_is_na():
    trials = [trial(1, "load", [r()])]
    assert by_name(check_run(run(trials)))["contention"].status == NA


# ---------------------------------------------------------------- older stores, failures
def test_failed_runs_are_na():
    checks = check_run(RunResult("failed", "boom"))
    assert [c.status for c in checks] == [NA] * len(CHECKS)
    assert validity_text(checks) == "ok"


def test_a_store_written_before_the_checks_gives_na_not_a_crash():
    old = {"status": "ok", "trials": [
        {"index": 0, "phase": "idle", "window_s": 1.0, "samples": 0, "readings": [
            {"channel": PKG, "energy_j": 10.0, "window_s": 1.0, "method": "measured-counter",
             "api": "powercap:intel-rapl:0/energy_uj", "details": {"update_period_s": 0.001}}],
         "telemetry": {"foreign_cpu_cores": 0.0}},
        {"index": 1, "phase": "load", "window_s": 2.0, "samples": 10, "readings": [
            {"channel": PKG, "energy_j": 60.0, "window_s": 2.0, "method": "measured-counter",
             "api": "powercap:intel-rapl:0/energy_uj", "details": {"update_period_s": 0.001}}],
         "telemetry": {"foreign_cpu_cores": 0.01}}],
        "details": {"meters": [{"meter": "rapl", "role": "cpu", "channels": {
            PKG: {"zone": "intel-rapl:0", "in_total": True, "update_period_s": 0.001}}}],
            "warmup": {"iterations": 9, "seconds": 1.0, "steady": True,
                       "last_rates_per_s": [10.0, 10.0, 10.1]}}}
    c = by_name(check_run(RunResult.from_dict(old)))
    assert c["warmup"].status == PASS and "1%" in c["warmup"].detail  # spread recomputed
    assert c["windows"].status == PASS  # the reading's period, the default 10 periods
    assert c["power"].status == PASS and "no power limit known" in c["power"].detail
    assert c["busy"].status == NA
    assert c["contention"].status == PASS
    weird = RunResult("ok", trials=[trial(1, "load", [r()])],
                      details={"meters": "rapl", "warmup": "yes", "serving": {"points": 3}})
    checks = check_run(weird)
    assert [x.name for x in checks] == list(CHECKS)
    assert all(x.status in (PASS, FAIL, NA) for x in checks)


# ---------------------------------------------------------------- real runs
class ClockedBackend:
    """Each call advances the fake clock and rewrites the fake powercap counters."""

    def __init__(self, clock, fake, latency_s):
        self.clock, self.fake, self.latency_ns = clock, fake, int(latency_s * 1e9)

    def prepare(self, batch):
        return batch

    def infer(self, x):
        self.clock.now += self.latency_ns
        self.fake.write()
        return x

    def infer_timed(self, x):
        return self.infer(x), None

    def to_numpy(self, out):
        return np.asarray(out)

    def synchronize(self):
        pass


def test_a_loop_under_a_fake_rapl_tree_passes_every_check(tmp_path):
    clock = FakeClock()
    fake = FakePowercap(tmp_path / "powercap", {"intel-rapl:0": ("package-0", Constant(50.0))},
                        clock=clock)
    zone = fake.root / "intel-rapl:0"
    (zone / "constraint_0_name").write_text("long_term\n")
    (zone / "constraint_0_power_limit_uw").write_text("125000000\n")
    meter = RaplMeter(MeterContext(clock=clock), root=fake.root, background=False,
                      self_test_s=0)
    meter.open()
    meter.update_periods = {PKG: 0.001}  # what a self-test on hardware observes

    def sleep(seconds):
        clock.sleep(seconds)
        fake.write()

    protocol = Preset("t", warmup_min_s=0.1, warmup_max_s=2, latency_min_iters=5,
                      latency_min_s=0.05, latency_max_s=1, window_min_s=0.5, trials_min=3,
                      trials_max=3, idle_s=0.2, eval_cap=None)
    quiet = CpuContention(lambda: 100.0, lambda: 0.0, lambda: clock() / 1e9)
    loop = MeasuredLoop(ClockedBackend(clock, fake, 0.01), 4, [meter], protocol, clock=clock,
                        sleep=sleep, contention=quiet)
    out = loop.run(np.zeros((8, 3), np.float32))
    assert out.warmup["steady"] and out.warmup["spread"] == pytest.approx(0.0)
    assert all(t.telemetry["in_call_s"] == pytest.approx(t.window_s)
               for t in out.trials if t.phase == "load")
    # what the worker's to_result stores (details.meters, details.warmup), via the store's JSON
    result = RunResult.from_dict(RunResult("ok", trials=out.trials, details={
        "meters": [meter.describe()], "warmup": out.warmup, "window_s": out.window_s}
    ).to_dict())
    checks = by_name(check_run(result))
    assert {c.status for c in checks.values()} == {PASS}, checks
    assert "limit 125 W" in checks["power"].detail
    assert "10 x 1 ms rapl" in checks["windows"].detail


def test_a_stored_smoke_run_has_its_validity(tmp_path):
    from optbench.results.store import Store
    from optbench.run.parse import parse_recipe
    from optbench.run.sweep import Runner

    class Events:
        def started(self, index, total, spec):
            pass

        def phase(self, spec, phase):
            pass

        def finished(self, spec, run_id, result):
            pass

        def notice(self, text):
            pass

    recipe = parse_recipe({"name": "v", "model": "fake-mlp", "backends": ["fake"],
                           "variants": ["fp32"], "measure": {"preset": "smoke",
                                                             "timeout_s": 60}})
    Runner(tmp_path, Events()).run(recipe)
    (stored,) = Store.open(tmp_path).runs()
    assert stored.result.status == "ok", stored.result.reason
    checks = by_name(check_run(stored.result))
    assert list(checks) == list(CHECKS)
    # smoke's warm-up is capped at 0.3 s with 0.25 s blocks: never three blocks to judge
    assert checks["warmup"].status == FAIL and "3 needed" in checks["warmup"].detail
    assert checks["busy"].status in (PASS, FAIL) and "%" in checks["busy"].detail
    assert checks["contention"].status in (PASS, FAIL)  # other work on this machine or not
    if all(m.get("method") == "estimated" for m in stored.result.details["meters"]):
        assert checks["power"].status == NA
    assert validity_text(list(checks.values())).startswith("failed: warmup (")
