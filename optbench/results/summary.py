"""One summary row per stored run, derived from raw data on read.

Latency is per batch (what one request of `batch_size` samples waits). Throughput and
energy come from the metered load trials. Energy per sample is gross by default (what a
dedicated deployment pays); the idle baseline and the net figure sit beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optbench.artifact import CLASSIC
from optbench.carbon import CarbonSettings, carbon_settings
from optbench.results import quality, validity
from optbench.results.quality import NLL_METRICS
from optbench.results.schema import METHODS, RunResult, Trial, weakest_method
from optbench.results.stats import percentile, summarize
from optbench.results.store import StoredRun

GPU_PREFIX = "gpu:"


def energy_summary(trials: list[Trial]) -> dict[str, Any]:
    """Gross, idle and net energy per sample with provenance, from raw trials.

    Totals follow the domain algebra (only `in_total` channels are summed); trials whose
    flags make them unusable are kept in the store and left out here, and counted.
    """
    loads = [t for t in trials if t.phase == "load" and t.samples > 0 and not t.excluded]
    idles = [t for t in trials if t.phase == "idle" and not t.excluded]
    readings = [r for t in loads for r in t.readings]
    methods = {r.channel: r.method for r in readings if r.in_total}
    flags = {f for r in readings for f in r.flags} | {f for t in loads for f in t.flags}
    out: dict[str, Any] = {
        "energy_method": weakest_method(list(methods.values())),
        "energy_channels": "; ".join(f"{c}={m}" for c, m in sorted(methods.items())),
        "energy_reason": "; ".join(sorted({r.reason for r in readings
                                           if r.method == "unavailable" and r.reason})),
        "energy_per_sample_j": None, "energy_per_sample_ci95_j": None,
        "energy_per_sample_cov": None, "energy_trials": 0, "idle_power_w": None,
        "energy_trials_excluded": sum(1 for t in trials if t.phase == "load" and t.excluded),
        "net_energy_per_sample_j": None, "energy_per_sample_by_channel_j": {},
    }
    if len(set(methods.values())) > 1:
        out["energy_method_total"] = "mixed"
    totals = [t.total_energy_j() for t in loads]
    if loads and all(e is not None for e in totals):
        values = [e / t.samples for e, t in zip(totals, loads)]  # type: ignore[operator]
        s = summarize(values)
        out.update(energy_per_sample_j=s.median, energy_per_sample_ci95_j=s.ci95,
                   energy_per_sample_cov=s.cov, energy_trials=s.n,
                   energy_per_sample_mean_j=s.mean)
        for channel in sorted({r.channel for r in readings}):
            per = [r.energy_j / t.samples for t in loads for r in t.readings
                   if r.channel == channel and r.energy_j is not None]
            if per:
                out["energy_per_sample_by_channel_j"][channel] = summarize(per).median
        idle = idle_power(idles)
        if idle is not None:
            out["idle_power_w"] = idle
            net = [(e - idle * t.window_s) / t.samples for e, t in zip(totals, loads)]  # type: ignore[operator]
            out["net_energy_per_sample_j"] = summarize(net).median
            if out["net_energy_per_sample_j"] < 0:
                flags.add("net_negative")
            powers = [t.total_energy_j() / t.window_s for t in idles]  # type: ignore[operator]
            if len(powers) > 1 and abs(powers[-1] - powers[0]) > 0.05 * powers[0]:
                flags.add("idle_drift")
    out["energy_flags"] = ",".join(sorted(flags))
    return out


def idle_power(idles: list[Trial]) -> float | None:
    """Mean idle power over the idle windows, from measured channels only.

    An estimate models only this process's CPU time, so its "idle power" is not a reading.
    """
    if not idles:
        return None
    if not all(r.method.startswith("measured") for t in idles for r in t.readings if r.in_total):
        return None
    totals = [t.total_energy_j() for t in idles]
    if any(e is None for e in totals):
        return None
    return sum(totals) / sum(t.window_s for t in idles)  # type: ignore[arg-type]


def summarize_run(run: StoredRun, carbon: CarbonSettings | None = None,
                  price_per_kwh: float | None = None) -> dict[str, Any]:
    """The export/report row of one run; CO2 per `carbon` (default: world, PUE 1.0) and
    electricity cost per 1,000 samples at `price_per_kwh` (None: not priced)."""
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
        "env_id": run.env_id, "machine": run.spec.get("machine"), "front": run.spec.get("front"),
        "node": result.details.get("placement", {}).get("node_ip"),
        "price_per_hour": result.details.get("placement", {}).get("price_per_hour"),
        "foreign_cpu_max_cores": foreign_cpu(result.trials),
        "git_sha": run.git_sha, "git_dirty": run.git_dirty,
        "started_at": run.started_at, "metrics": metrics,
        "latency_p50_s": None, "latency_p90_s": None, "latency_p99_s": None,
        "latency_mean_s": None, "throughput_per_s": None,
    }
    row.update(quality_summary(result))
    row.update(validity_summary(result))
    lat = run.latency_stats("batch")  # stored beside the raw array: not read from it
    if lat is not None:
        row.update(latency_p50_s=lat.p50_s, latency_p90_s=lat.p90_s, latency_p99_s=lat.p99_s,
                   latency_mean_s=lat.mean_s, latency_n=lat.n)
    device = run.latency_stats("device")
    if device is not None:
        row["latency_device_p50_s"] = device.p50_s
        row["latency_device_p99_s"] = device.p99_s
    loads = [t for t in result.trials if t.phase == "load" and t.window_s > 0]
    if loads:
        rates = summarize([t.samples / t.window_s for t in loads])
        row.update(throughput_per_s=rates.median, throughput_ci95_per_s=rates.ci95)
    row.update(energy_summary(result.trials))
    row.update(generation_summary(result.details.get("generation"), loads))
    row.update(model_facts(result.artifact))
    row.update(benchmark_energy(result.trials, row, run.wall_s))
    row["model_bytes"] = result.backend.get("model_bytes")
    by_channel = row["energy_per_sample_by_channel_j"]
    gpu = [v for c, v in by_channel.items() if c.startswith(GPU_PREFIX)]
    cpu = [v for c, v in by_channel.items() if not c.startswith(GPU_PREFIX) and c != "psys"]
    row["energy_gpu_per_sample_j"] = sum(gpu) if gpu else None
    row["energy_cpu_per_sample_j"] = sum(cpu) if cpu else None
    carbon = carbon or carbon_settings()
    per_1000 = None if row["energy_per_sample_j"] is None else row["energy_per_sample_j"] * 1000
    row["energy_per_1000_wh"] = None if per_1000 is None else per_1000 / 3600
    row["co2_g_per_1000"] = carbon.grams(per_1000)
    row["carbon_intensity_g_per_kwh"] = carbon.intensity_g_per_kwh
    row["pue"] = carbon.pue
    row["price_per_kwh"] = price_per_kwh
    row["cost_per_1000"] = (None if price_per_kwh is None or per_1000 is None
                            else per_1000 / 3.6e6 * carbon.pue * price_per_kwh)
    if result.status != "ok":
        row["energy_method"] = None
    return row


def foreign_cpu(trials: list[Trial]) -> float | None:
    """The most CPU other processes used in a metered window (cores; an executor's daemons,
    Ray's raylet for one, are among them), or None where it was not recorded."""
    seen = [t.telemetry.get("foreign_cpu_cores") for t in trials
            if t.phase != "idle" and not t.excluded]
    values = [float(v) for v in seen if isinstance(v, (int, float))]
    return max(values) if values else None


def validity_summary(result: RunResult) -> dict[str, Any]:
    """The run's validity checks (results/validity.py): "ok" or what failed, whether it
    passed (a failed run is kept and drawn hollow, never dropped), and every check."""
    if result.status != "ok":
        return {"validity": None, "valid": None, "validity_checks": []}
    checks = validity.check_run(result)
    return {"validity": validity.validity_text(checks), "valid": validity.is_valid(checks),
            "validity_checks": [c.to_dict() for c in checks]}


def quality_summary(result: RunResult) -> dict[str, Any]:
    """The headline quality figure's 95% interval, from its per-sample outcomes, and what a
    paired test against another run needs (`quality_outcomes`, `quality_inputs`: which
    inputs, so only runs judged on the same samples are paired). A run stored without
    outcomes gets a Wilson interval from its fraction and sample count where it has both."""
    out: dict[str, Any] = {"quality_ci95_low": None, "quality_ci95_high": None,
                           "quality_ci_method": None, "quality_samples": None,
                           "quality_outcomes": None, "quality_inputs": None}
    metric = result.quality_metric
    if result.status != "ok" or not metric:
        return out
    workload = result.details.get("workload", {})
    values = result.outcomes.get(metric)
    if values is not None and len(values):
        outcomes = np.asarray(values, dtype=np.float64 if metric in NLL_METRICS else np.uint8)
        ci = quality.interval(metric, outcomes)
        out.update(quality_samples=len(outcomes), quality_outcomes=outcomes,
                   quality_ci_method="bootstrap" if metric in NLL_METRICS else "wilson",
                   quality_inputs="|".join(str(workload.get(k)) for k in (
                       "workload", "dataset", "source", "eval_samples", "prompts",
                       "perplexity_windows", "perplexity_window_tokens")))
    else:
        metrics = {m.name: (m.value, m.unit) for m in result.metrics}
        value, unit = metrics.get(metric, (None, None))
        n = (metrics.get("eval_samples") or (None, None))[0]
        ci = None
        if value is not None and unit == "fraction" and n:
            ci = quality.wilson_interval(int(round(value * n)), int(n))
            out.update(quality_samples=int(n), quality_ci_method="wilson (from the figure)")
    if ci is not None:
        out["quality_ci95_low"], out["quality_ci95_high"] = ci
    return out


def generation_summary(timing: dict[str, Any] | None, loads: list[Trial]) -> dict[str, Any]:
    """Text runs: TTFT and TPOT percentiles over the timed requests, requests per second,
    and energy per request (a window's energy over the requests completed in it)."""
    out: dict[str, Any] = {k: None for k in (
        "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "itl_p99_s", "requests_per_s",
        "energy_per_request_j", "new_tokens", "timing_source")}
    if not timing:
        return out
    for name in ("ttft", "tpot"):
        values = timing.get(f"{name}_s") or []
        if values:
            out[f"{name}_p50_s"] = percentile(values, 50)
            out[f"{name}_p99_s"] = percentile(values, 99)
    out["itl_p99_s"] = (timing.get("itl_percentiles_s") or {}).get("99")
    out["new_tokens"] = timing.get("new_tokens")
    out["timing_source"] = timing.get("timing_source")
    counted = [t for t in loads if t.requests]
    if counted:
        out["requests_per_s"] = summarize([t.requests / t.window_s for t in counted]).median
        usable = [t for t in counted if not t.excluded and t.total_energy_j() is not None]
        if usable:
            out["energy_per_request_j"] = summarize(
                [t.total_energy_j() / t.requests for t in usable]).median  # type: ignore[operator]
    return out


def model_facts(artifact: dict[str, Any]) -> dict[str, Any]:
    """What the artifact is and what making it cost: lineage, size, and the summed energy and
    time of its training transforms (a cached artifact still carries what it cost to make)."""
    records = artifact.get("training", [])
    energies = [r.get("energy_j") for r in records]
    out: dict[str, Any] = {
        "lineage": " > ".join(artifact.get("lineage", [])),
        "model_kind": model_kind(artifact),
        "model_family": artifact.get("family"),  # a classic model's: logreg, forest, ...
        "precision": artifact.get("precision"),
        "parameters": artifact.get("parameters"), "macs": artifact.get("macs"),
        "training": records, "training_energy_j": None, "training_energy_method": None,
        "training_s": None, "training_budget_exhausted": None,
    }
    if records:
        out["training_energy_j"] = (None if any(e is None for e in energies)
                                    else float(sum(energies)))  # type: ignore[arg-type]
        out["training_energy_method"] = weakest_method([r.get("energy_method", "unavailable")
                                                        for r in records])
        out["training_s"] = float(sum(r.get("seconds", 0.0) for r in records))
        out["training_budget_exhausted"] = any(r.get("budget_exhausted") for r in records)
    return out


def benchmark_energy(trials: list[Trial], facts: dict[str, Any],
                     wall_s: float | None) -> dict[str, Any]:
    """What measuring this configuration drew: the energy of every metered window (load
    and idle, flagged trials included: they were drawn too) plus the training energy of
    its transforms (a cached artifact still carries it: a grid pays it once as well).
    Unmetered work (loading, exporting) is not in it; None when a window was unmeasured."""
    totals = [t.total_energy_j() for t in trials]
    methods = [r.method for t in trials for r in t.readings if r.in_total]
    energy: float | None = None
    if trials and all(v is not None for v in totals):
        energy = float(sum(totals))  # type: ignore[arg-type]
        if facts.get("training"):
            training = facts.get("training_energy_j")
            energy = None if training is None else energy + training
            methods.append(facts.get("training_energy_method") or "unavailable")
    return {"bench_energy_j": energy,
            "bench_energy_method": weakest_method(methods) if energy is not None else None,
            "bench_wall_s": wall_s}


def model_kind(artifact: dict[str, Any]) -> str | None:
    """"classic" for a classic-ML model (models/classic.py: no neural network), "deep" for
    a network (torch, ONNX, Hugging Face), None when the run stored no artifact."""
    if not artifact.get("format"):
        return None
    return "classic" if artifact["format"] == CLASSIC else "deep"


def method_rank(method: str | None) -> int:
    return METHODS.index(method) if method in METHODS else len(METHODS)


SERVE_PHASE = "serve"  # the trial phase of a serving point's metered windows


def serving_rows(run: StoredRun, base: dict[str, Any]) -> list[dict[str, Any]]:
    """A serving run's rows: one per measured load (its closed-loop row `base` plus the
    point's figures). Energy per request is a point's windows' energy over the requests
    completed in them (pooled, so energy per request x achieved rate is the mean power),
    with the spread of the windows for its interval; net subtracts the idle baseline."""
    serving = run.result.details.get("serving")
    if not serving:
        return []
    trials = {t.index: t for t in run.result.trials}
    idle = idle_power([t for t in run.result.trials if t.phase == "idle" and not t.excluded])
    scenario = run.spec.get("scenario") or {}
    rows = []
    for number, point in enumerate(serving["points"]):
        windows = [trials[i] for i in point["trials"] if i in trials]
        f = point["figures"]
        lg = point.get("loadgen", {})
        row = {**base,
               "row_id": f"{base['run_id']}:{number}", "point": number,
               "scenario": serving["scenario"], "max_batch": serving.get("max_batch"),
               "max_wait_ms": serving.get("max_wait_ms"),
               "cache_size": serving.get("cache_size") or 0,
               "repeat_skew": serving.get("repeat_skew"),
               "duration_s": serving.get("duration_s"),
               "latency_bound_ms": scenario.get("latency_bound_ms"),
               "capacity_per_s": serving.get("capacity_per_s"),
               "search_probe": point.get("probe", False),
               "offered_rate_per_s": point["offered_rate_per_s"],
               "arrival_rate_per_s": f["arrival_rate_per_s"],
               "closed_loop_latency_p50_s": base.get("latency_p50_s"),
               "closed_loop_latency_p99_s": base.get("latency_p99_s"),
               "latency_mean_s": f["latency_mean_s"], "latency_p50_s": f["latency_p50_s"],
               "latency_p90_s": f["latency_p90_s"], "latency_p99_s": f["latency_p99_s"],
               "goodput_per_s": f["goodput_per_s"], "saturated": f["saturated"],
               "dropped": f["dropped"], "mean_batch": f["mean_batch"],
               "cache_hit_rate": f["cache_hit_rate"], "serving_errors": f["errors"],
               "served_agreement": serving.get("served_agreement"),
               "max_rate_under_bound_per_s": serving.get("max_rate_under_bound_per_s"),
               "max_rate_is_lower_bound": serving.get("max_rate_is_lower_bound"),
               "batching": serving.get("batching", "static"),
               "loadgen_validity": lg.get("result_validity"),
               "loadgen_latency_p99_s": _ns(lg.get("result_99.00_percentile_latency_ns")),
               "serving_notes": "; ".join(point.get("notes", []))}
        for key in ("ttft_mean_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s"):
            if key in f:
                row[key] = f[key]
        row.update(point_energy(windows, idle))
        if row["achieved_rate_per_s"] and f["window_s"]:
            # goodput over the same metered seconds as the achieved rate: the share of the
            # completed requests within the bounds (a count: rounded, so that all of them
            # gives the achieved rate exactly, not one ulp above it)
            good = round(f["goodput_per_s"] * f["window_s"])
            row["goodput_per_s"] = row["achieved_rate_per_s"] * min(good / row["completed"], 1.0)
        rows.append(row)
    return rows


def _ns(value: Any) -> float | None:
    return None if value is None else float(value) / 1e9


def point_energy(windows: list[Trial], idle: float | None) -> dict[str, Any]:
    """Gross and net energy per request (and per output token) over a point's windows."""
    # windows that completed no request still count: their seconds and their energy
    usable = [t for t in windows if not t.excluded and t.requests is not None]
    seconds = sum(t.window_s for t in usable)
    requests = sum(t.requests or 0 for t in usable)
    methods = [r.method for t in usable for r in t.readings if r.in_total]
    out: dict[str, Any] = {
        "achieved_rate_per_s": requests / seconds if seconds else None, "completed": requests,
        "energy_per_request_j": None, "energy_per_request_ci95_j": None,
        "net_energy_per_request_j": None, "energy_per_token_j": None,
        "idle_power_w": idle, "idle_share": None, "serving_power_w": None,
        "energy_method": weakest_method(methods), "energy_windows": len(usable),
        "energy_flags": ",".join(sorted({f for t in usable for r in t.readings
                                         for f in r.flags} | {f for t in usable
                                                              for f in t.flags})),
    }
    totals = [t.total_energy_j() for t in usable]
    if not usable or not requests or any(e is None for e in totals):
        return out
    energy = float(sum(totals))  # type: ignore[arg-type]
    out["energy_per_request_j"] = energy / requests
    out["serving_power_w"] = energy / seconds
    per_window = [e / t.requests for e, t in zip(totals, usable) if t.requests]  # type: ignore[operator]
    if len(per_window) > 1 and len(per_window) == len(usable):
        out["energy_per_request_ci95_j"] = summarize(per_window).ci95
    tokens = sum(t.samples for t in usable)
    if tokens and tokens != requests:
        out["energy_per_token_j"] = energy / tokens
    if idle is not None:
        idle_j = idle * seconds
        out["net_energy_per_request_j"] = (energy - idle_j) / requests
        out["idle_share"] = min(1.0, idle_j / energy) if energy > 0 else None
    return out
