"""One summary row per stored run, derived from raw data on read.

Latency is per batch (what one request of `batch_size` samples waits). Throughput and
energy come from the metered load trials. Energy per sample is gross by default (what a
dedicated deployment pays); the idle baseline and the net figure sit beside it.
"""

from __future__ import annotations

from typing import Any

from optbench.results.schema import METHODS, Trial, weakest_method
from optbench.results.stats import percentile, summarize
from optbench.results.store import StoredRun

EXPORT_COLUMNS = (
    "run_id", "model", "backend", "variant", "batch_size", "device", "status", "reason",
    "quality_metric", "quality_value", "latency_p50_s", "latency_p90_s", "latency_p99_s",
    "latency_mean_s", "throughput_per_s", "energy_per_sample_j", "energy_per_sample_ci95_j",
    "energy_per_sample_cov", "energy_trials", "energy_method", "energy_channels",
    "idle_power_w", "net_energy_per_sample_j", "energy_flags", "sample_unit", "weights",
    "precision_path", "env_id", "git_sha", "started_at",
)


def trial_total_j(trial: Trial) -> float | None:
    values = [r.energy_j for r in trial.readings]
    if not values or any(v is None for v in values):
        return None
    return float(sum(values))  # type: ignore[arg-type]


def energy_summary(trials: list[Trial]) -> dict[str, Any]:
    """Gross, idle and net energy per sample with provenance, from raw trials."""
    loads = [t for t in trials if t.phase == "load" and t.samples > 0]
    idles = [t for t in trials if t.phase == "idle"]
    readings = [r for t in loads for r in t.readings]
    methods = {r.channel: r.method for r in readings}
    out: dict[str, Any] = {
        "energy_method": weakest_method(list(methods.values())) if methods else "unavailable",
        "energy_channels": "; ".join(f"{c}={m}" for c, m in sorted(methods.items())),
        "energy_flags": ",".join(sorted({f for r in readings for f in r.flags}
                                        | {f for t in loads for f in t.flags})),
        "energy_reason": "; ".join(sorted({r.reason for r in readings
                                           if r.method == "unavailable" and r.reason})),
        "energy_per_sample_j": None, "energy_per_sample_ci95_j": None,
        "energy_per_sample_cov": None, "energy_trials": 0, "idle_power_w": None,
        "net_energy_per_sample_j": None,
    }
    if len(set(methods.values())) > 1:
        out["energy_method_total"] = "mixed"
    per_sample = [(trial_total_j(t), t) for t in loads]
    if loads and all(e is not None for e, _ in per_sample):
        values = [e / t.samples for e, t in per_sample]  # type: ignore[operator]
        s = summarize(values)
        out.update(energy_per_sample_j=s.median, energy_per_sample_ci95_j=s.ci95,
                   energy_per_sample_cov=s.cov, energy_trials=s.n,
                   energy_per_sample_mean_j=s.mean)
        idle_totals = [(trial_total_j(t), t.window_s) for t in idles]
        # An estimate models only this process's CPU time: its "idle power" is not a reading.
        idle_measured = all(r.method.startswith("measured") for t in idles for r in t.readings)
        if idle_totals and idle_measured and all(e is not None for e, _ in idle_totals):
            idle_w = sum(e for e, _ in idle_totals) / sum(w for _, w in idle_totals)  # type: ignore[misc]
            out["idle_power_w"] = idle_w
            net = [(e - idle_w * t.window_s) / t.samples for e, t in per_sample]  # type: ignore[operator]
            out["net_energy_per_sample_j"] = summarize(net).median
    return out


def summarize_run(run: StoredRun) -> dict[str, Any]:
    """The export/report row of one run."""
    result = run.result
    metrics = {m.name: m.value for m in result.metrics}
    row: dict[str, Any] = {
        "run_id": run.id, "model": run.model, "backend": run.backend, "variant": run.variant,
        "batch_size": run.batch_size, "device": run.device, "status": result.status,
        "reason": result.reason, "quality_metric": result.quality_metric,
        "quality_value": metrics.get(result.quality_metric) if result.quality_metric else None,
        "quality_higher_is_better": result.quality_higher_is_better,
        "sample_unit": result.details.get("workload", {}).get("sample_unit", "sample"),
        "weights": result.artifact.get("weights"),
        "weights_trained": result.artifact.get("weights_trained"),
        "precision_path": result.backend.get("path"),
        "env_id": run.env_id, "git_sha": run.git_sha, "git_dirty": run.git_dirty,
        "started_at": run.started_at, "metrics": metrics,
        "latency_p50_s": None, "latency_p90_s": None, "latency_p99_s": None,
        "latency_mean_s": None, "throughput_per_s": None,
    }
    lat = result.latencies_s
    if lat:
        row.update(latency_p50_s=percentile(lat, 50), latency_p90_s=percentile(lat, 90),
                   latency_p99_s=percentile(lat, 99), latency_mean_s=sum(lat) / len(lat),
                   latency_n=len(lat))
    loads = [t for t in result.trials if t.phase == "load" and t.window_s > 0]
    if loads:
        rates = summarize([t.samples / t.window_s for t in loads])
        row.update(throughput_per_s=rates.median, throughput_ci95_per_s=rates.ci95)
    row.update(energy_summary(result.trials))
    if result.status != "ok":
        row["energy_method"] = None
    return row


def method_rank(method: str | None) -> int:
    return METHODS.index(method) if method in METHODS else len(METHODS)
