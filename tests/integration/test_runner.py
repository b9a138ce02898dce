"""Child-process isolation: each fault of one backend leaves every other result stored."""

import json
import time

from typer.testing import CliRunner

from optbench.backends.trt import TensorRtBackend
from optbench.cli import app
from optbench.results.store import Store
from optbench.run.child import KILL_GRACE_S
from optbench.run.parse import parse_recipe
from optbench.run.sweep import Runner


class Events:
    def __init__(self):
        self.phases, self.done, self.last_phase = [], [], {}

    def started(self, index, total, spec):
        pass

    def phase(self, spec, phase):
        self.phases.append(phase)
        self.last_phase[spec.backend.label()] = phase

    def finished(self, spec, run_id, result):
        self.done.append((spec.backend.label(), result.status, result.reason))

    def notice(self, text):
        self.phases.append(text)


def recipe(backends, timeout_s=60, variants=("fp32",)):
    return parse_recipe({"name": "iso", "model": "fake-mlp", "backends": backends,
                         "variants": list(variants),
                         "measure": {"preset": "smoke", "timeout_s": timeout_s}})


def test_faults_become_failed_records_and_the_sweep_goes_on(tmp_path):
    backends = ["fake", {"fake": {"fault": "raise"}}, {"fake": {"fault": "crash"}},
                {"fake": {"fault": "oom", "fault_at": "infer"}}, {"fake": {"latency_s": 0.0001}}]
    events = Events()
    # generous: the ok runs (about 1.5 s each here) must never hit it on a loaded machine
    Runner(tmp_path, events).run(recipe(backends, timeout_s=60))
    runs = Store.open(tmp_path).runs()
    status = {r.backend: (r.result.status, r.result.reason) for r in runs}
    assert len(runs) == 5
    assert status["fake"][0] == "ok" and status["fake(latency_s=0.0001)"][0] == "ok"
    assert status["fake(fault=raise)"] == ("failed", "RuntimeError: injected failure")
    assert "killed by SIGSEGV" in status["fake(fault=crash)"][1]
    assert "SIGKILL" in status["fake(fault=oom,fault_at=infer)"][1]
    assert "out-of-memory" in status["fake(fault=oom,fault_at=infer)"][1]
    assert "energy trials" in events.phases
    for run in runs:
        assert run.log_path and run.env_id and run.started_at


HANG_TIMEOUT_S = 3


def test_a_hang_is_killed_at_the_timeout_and_the_sweep_goes_on(tmp_path):
    hang = {"fake": {"fault": "hang", "fault_at": "infer"}}
    events = Events()
    started = time.monotonic()
    # only a fault after the hang: it fails at load, well inside 3 s even on a busy machine,
    # where a full ok run might not
    Runner(tmp_path, events).run(recipe([hang, {"fake": {"fault": "raise"}}],
                                        timeout_s=HANG_TIMEOUT_S))
    elapsed = time.monotonic() - started
    status = {r.backend: (r.result.status, r.result.reason) for r in Store.open(tmp_path).runs()}
    assert status["fake(fault=raise)"] == ("failed", "RuntimeError: injected failure")
    state, reason = status["fake(fault=hang,fault_at=infer)"]
    assert state == "failed" and f"timed out after {HANG_TIMEOUT_S} s during '" in reason
    assert "raise measure.timeout_s" in reason
    # the phase named is the last one the child reported ('warm-up' unless the machine is so
    # busy that it had not got there in 3 s)
    assert f"during '{events.last_phase['fake(fault=hang,fault_at=infer)']}'" in reason
    # cut at the timeout, not waited out (the fault sleeps for 10^6 s); the bound leaves
    # room for the SIGTERM grace period and two child start-ups on a loaded 2-core machine
    assert elapsed < HANG_TIMEOUT_S + KILL_GRACE_S + 30, elapsed


def test_ok_runs_keep_raw_latencies_trials_and_provenance(tmp_path):
    Runner(tmp_path).run(recipe(["fake"], variants=("fp32", "int8")))
    runs = Store.open(tmp_path).runs()
    assert [r.result.status for r in runs] == ["ok", "ok"]
    for run in runs:
        assert len(run.result.latencies_s) >= 5
        phases = [t.phase for t in run.result.trials]
        assert phases[0] == "idle" and phases.count("load") == 2
        for trial in run.result.trials:
            for reading in trial.readings:
                assert reading.method == "estimated" and reading.energy_j is not None
                assert reading.details["formula"]
        assert run.result.artifact["weights"].startswith("random init")
    int8 = runs[1].result
    assert int8.artifact["precision"] == "int8" and int8.artifact["lineage"] == ["int8"]
    assert {m.name for m in int8.metrics} >= {"top1_agreement", "logit_cosine"}


def test_resume_skips_configurations_already_ok(tmp_path):
    r = recipe(["fake", {"fake": {"fault": "raise"}}])
    Runner(tmp_path).run(r)
    events = Events()
    written = Runner(tmp_path, events).run(r, resume=True)
    assert len(written) == 1  # only the failed one ran again
    assert ("fake", "skipped", "resume: already ok") in events.done


def test_unsupported_precision_is_a_skipped_record(tmp_path):
    Runner(tmp_path).run(parse_recipe({"name": "s", "model": "fake-mlp", "backends": ["fake"],
                                       "variants": ["fp16"], "measure": {"preset": "smoke"}}))
    (run,) = Store.open(tmp_path).runs()
    assert run.result.status == "skipped"
    assert "no native fp16 path" in run.result.reason


def test_cli_compare_writes_store_report_and_export(tmp_path):
    cli = CliRunner()
    result = cli.invoke(app, ["compare", "--model", "fake-mlp", "--backends", "fake,trt",
                              "--int8", "--preset", "smoke", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "compare-fake-mlp" / "index.html").is_file()
    report = (tmp_path / "compare-fake-mlp" / "report.md").read_text()
    # trt is skipped everywhere: for what it lacks here, or (in the GPU image, TensorRT
    # available) because it cannot load fake-mlp's numpy weights
    trt = TensorRtBackend.availability()
    why = "cannot load a numpy model" if trt else trt.reason.split(":")[0].split("(")[0].strip()
    assert "Skipped and failed" in report and why in report, why
    rows = json.loads(cli.invoke(app, ["export", "--format", "json", "--out",
                                       str(tmp_path)]).stdout)
    assert {(r["backend"], r["variant"], r["status"]) for r in rows} == {
        ("fake", "fp32", "ok"), ("fake", "int8", "ok"), ("trt", "fp32", "skipped"),
        ("trt", "int8", "skipped")}
    ok = [r for r in rows if r["status"] == "ok"]
    for row in ok:
        assert row["energy_method"] == "estimated" and row["energy_per_sample_j"] > 0
        assert row["latency_p50_s"] > 0 and row["throughput_per_s"] > 0
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert all(r["energy_per_sample_j"] is None for r in skipped)
    csv_text = cli.invoke(app, ["export", "--format", "csv", "--out", str(tmp_path)]).stdout
    header = csv_text.splitlines()[0].split(",")
    for column in ("model", "backend", "variant", "batch_size", "status", "reason",
                   "quality_metric", "quality_value", "latency_p50_s", "latency_p99_s",
                   "throughput_per_s", "energy_per_sample_j", "energy_method"):
        assert column in header
    assert cli.invoke(app, ["export", "--format", "xml", "--out", str(tmp_path)]).exit_code == 2


def test_device_auto_picks_cuda_only_for_backends_that_run_there():
    from optbench.backends import BACKENDS
    from optbench.run.sweep import resolve_device

    assert resolve_device("auto", "torch", has_gpu=False) == "cpu"
    torch_cuda = bool(BACKENDS.get("torch").device_support("cuda"))
    assert resolve_device("auto", "torch", has_gpu=True) == ("cuda" if torch_cuda else "cpu")
    ort_cuda = bool(BACKENDS.get("ort").device_support("cuda"))
    assert resolve_device("auto", "ort", has_gpu=True) == ("cuda" if ort_cuda else "cpu")
    assert resolve_device("auto", "openvino", has_gpu=True) == "cpu"
    assert resolve_device("auto", "trt", has_gpu=False) == "cuda"  # GPU-only: skipped with why
    assert resolve_device("cpu", "torch", has_gpu=True) == "cpu"


def test_interleaved_preset_alternates_configurations(tmp_path):
    r = parse_recipe({"name": "il", "model": "fake-mlp",
                      "backends": ["fake", {"fake": {"latency_s": 0.0002}},
                                   {"fake": {"fault": "raise"}},
                                   {"fake": {"fault": "crash", "fault_at": "infer"}}],
                      "measure": {"preset": "smoke-interleaved", "timeout_s": 60}})
    Runner(tmp_path, interleave_group=4).run(r)
    runs = {run.backend: run for run in Store.open(tmp_path).runs()}
    assert runs["fake(fault=raise)"].result.status == "failed"
    assert "SIGSEGV" in runs["fake(fault=crash,fault_at=infer)"].result.reason
    ok = [runs["fake"], runs["fake(latency_s=0.0002)"]]
    starts = []
    for run in ok:
        assert run.result.status == "ok"
        phases = [t.phase for t in run.result.trials]
        assert phases == ["idle", "load", "load", "load", "idle"]  # idle before and after
        starts += [(t.telemetry["t_start_monotonic_ns"], run.backend)
                   for t in run.result.trials if t.phase == "load"]
    order = [backend for _, backend in sorted(starts)]
    assert order == ["fake", "fake(latency_s=0.0002)"] * 3  # A B A B A B
