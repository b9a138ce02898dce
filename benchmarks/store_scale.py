"""Do export, recommend and report scale to a store of 10,000 configurations?

Targets (issue 15): `optbench export` and `optbench recommend` within 10 s and 1 GB of
memory, `optbench report` within 60 s, on a store of 10,000 configurations.

The stores are synthetic but sized like real ones, written through `Store.add_run` exactly
as a sweep writes them: per run 12,000 raw batch latencies (a 1 ms model under the
standard preset's 10-30 s latency pass) and as many device latencies on GPU runs (half),
an idle and five load trials with energy on three channels (GPU, CPU package, DRAM;
estimated on a CPU-only third), per-sample outcomes on 1,000 evaluation samples for top-1
and agreement, and metadata as the worker writes it. Configurations spread over four
models (half, a quarter and two eighths of them); 2% failed, 2% rerun (the report keeps
the latest). About 150 KB a run: 1.5 GB at 10,000 runs.

Stores are cached under --dir (built once per size and shape: minutes at 10,000); each
command then runs as a subprocess (`optbench ...` run by `CLI`), timed by the wall clock,
its peak RSS the child's own VmHWM (os.wait4's ru_maxrss also counts the parent's high-water
mark at the fork, so a big parent inflates it; it is the fallback off Linux). Usage:

    python benchmarks/store_scale.py [--sizes 1000,10000] [--dir /tmp/optbench-bench] [--breakdown]

Prints a Markdown table (and with --breakdown, where the report's time goes, in process)
and exits 1 when a target is missed at the largest size; docs/benchmarks.md records the
figures seen.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from optbench.results.identity import spec_key
from optbench.results.schema import EnergyReading, Metric, RunResult, Trial
from optbench.results.store import STORE_NAME, Store

TARGETS = {"export csv": (10.0, 1024), "export json": (10.0, 1024), "recommend": (10.0, 1024),
           "report": (60.0, None)}  # command: (seconds, MiB or None)
MODELS = ("resnet50", "mobilenet-v3", "vit-b16", "efficientnet-b0")
SHARES = (0.5, 0.25, 0.125, 0.125)
BACKENDS = ("torch", "ort", "openvino", "trt", "onnx-cuda")
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class Shape:
    """What one synthetic run holds."""

    latencies: int = 12_000
    samples: int = 1000
    load_trials: int = 5
    failed: float = 0.02
    reruns: float = 0.02
    seed: int = 0


def spec_for(model: str, backend: str, variant: str, batch: int, gpu: bool) -> dict:
    """A resolved RunSpec as a sweep stores it (`RunSpec.to_dict`)."""
    return {"backend": {"name": backend, "options": []}, "batch_size": batch,
            "device": "cuda:0" if gpu else "cpu",
            "measure": {"cpu_tdp_w": None, "estimate": True, "meters": ["auto"],
                        "preset": "standard", "timeout_s": 1800.0},
            "model": {"ref": model, "weights": None}, "recipe": "scale", "scenario": None,
            "variant": {"name": variant, "steps": []},
            "workload": {"calibration_samples": 128, "dataset": None, "eval_samples": None,
                         "kind": "vision", "new_tokens": None, "prompt_tokens": None,
                         "seed": 0, "train_samples": None}}


def configurations(n: int) -> list[tuple[str, str, str, int]]:
    """n distinct (model, backend, variant, batch) configurations, by model share."""
    out: list[tuple[str, str, str, int]] = []
    for m, (model, share) in enumerate(zip(MODELS, SHARES)):
        count = n - len(out) if m == len(MODELS) - 1 else round(n * share)
        for i in range(count):
            backend = BACKENDS[i % len(BACKENDS)]
            batch = BATCHES[(i // len(BACKENDS)) % len(BATCHES)]
            variant = f"v{i // (len(BACKENDS) * len(BATCHES))}"
            out.append((model, backend, variant, batch))
    return out


def readings(rng: np.random.Generator, window_s: float, watts: float, gpu: bool,
             estimated: bool) -> tuple[EnergyReading, ...]:
    if estimated:
        cpu_s = window_s * rng.uniform(0.8, 1.0)
        return (EnergyReading("cpu:estimate", watts * window_s, window_s, "estimated",
                              "estimate:tdp-per-thread x process-cpu-time", reads=2,
                              uncertainty_j=watts * window_s,
                              reason="default 4 W per busy thread",
                              details={"formula": "E = TDP_W / threads x process_cpu_s",
                                       "watts_per_thread": 4.0, "threads": 2,
                                       "process_cpu_s": cpu_s}),)
    noise = rng.normal(1.0, 0.01, 3)
    parts = [("gpu:GPU-4f1c2d3e", 0.7 if gpu else 0.0, "measured-polled", "nvml:power"),
             ("cpu:package-0", 0.25 if gpu else 0.85, "measured-counter",
              "powercap:intel-rapl:0/energy_uj"),
             ("dram:0", 0.05 if gpu else 0.15, "measured-counter",
              "powercap:intel-rapl:0:0/energy_uj")]
    return tuple(EnergyReading(channel, watts * share * window_s * k, window_s, method, api,
                               reads=int(window_s * 10), uncertainty_j=0.01 * watts * window_s,
                               details={"samples": int(window_s * 10)})
                 for (channel, share, method, api), k in zip(parts, noise) if share)


def synthetic_result(rng: np.random.Generator, shape: Shape, model: int, batch: int,
                     gpu: bool, estimated: bool, failed: bool) -> RunResult:
    if failed:
        return RunResult("failed", reason="backend raised: out of memory (synthetic)",
                         quality_metric="top1")
    base_s = 0.0005 * batch * (1 + model) * rng.uniform(0.3, 3.0)
    latencies = rng.lognormal(np.log(base_s), 0.08, shape.latencies)
    accuracy = float(np.clip(0.78 - 0.05 * rng.random() ** 3, 0, 1))
    top1 = (rng.random(shape.samples) < accuracy).astype(float)
    agree = (rng.random(shape.samples) < 0.97).astype(float)
    watts = (250.0 if gpu else 35.0) * rng.uniform(0.6, 1.0)
    rate = batch / base_s
    trials = [Trial(0, "idle", 5.0, 0, readings(rng, 5.0, watts * 0.3, gpu, estimated),
                    telemetry={"t_start_monotonic_ns": 1, "foreign_cpu_cores": 0.0})]
    for t in range(1, shape.load_trials + 1):
        window_s = float(rng.uniform(10.0, 10.5))
        trials.append(Trial(t, "load", window_s, int(rate * window_s * rng.normal(1, 0.01)),
                            readings(rng, window_s, watts, gpu, estimated),
                            telemetry={"t_start_monotonic_ns": t, "foreign_cpu_cores": 0.01,
                                       "gpu_clock_mhz": 1980 if gpu else None,
                                       "temperature_c": 61}))
    return RunResult(
        "ok", quality_metric="top1",
        metrics=[Metric("top1", float(top1.mean()), "fraction"),
                 Metric("top1_agreement", float(agree.mean()), "fraction"),
                 Metric("eval_samples", float(shape.samples), "samples")],
        latencies_s=latencies.tolist(),
        device_latencies_s=(latencies * 0.8).tolist() if gpu else [], trials=trials,
        artifact={"name": MODELS[model], "format": "onnx", "precision": "fp32", "lineage": [],
                  "weights": "imagenet (synthetic)", "weights_trained": True,
                  "digest": "a7d8d56fc6aee15808d3", "parameters": 25_557_032},
        backend={"name": "ort", "precision": "fp32", "runtime": "onnxruntime 1.20",
                 "model_bytes": 102_000_000},
        details={"workload": {"workload": "vision", "sample_unit": "image",
                              "dataset": "imagenet-val (synthetic)", "eval_samples": shape.samples,
                              "calibration_samples": 128},
                 "meters": [{"meter": "rapl", "role": "cpu", "method": "measured-counter"}],
                 "warmup": {"iterations": 2000, "seconds": 2.0, "steady": True},
                 "protocol": "standard", "window_s": 10.0},
        phases_s={"build_s": 1.2, "load_s": 3.4, "warmup_s": 2.0, "accuracy_s": 4.0,
                  "latency_s": 12.0, "trials_s": 60.0},
        outcomes={"top1": top1.tolist(), "top1_agreement": agree.tolist()})


def build(directory: Path, n: int, shape: Shape) -> float:
    """The synthetic store of n configurations under `directory`, built unless a store of
    the same size and shape is already there; the seconds building took (0 when cached)."""
    stamp = directory / "store_scale.json"
    wanted = {"configurations": n, **asdict(shape)}
    if (directory / STORE_NAME).is_file() and stamp.is_file() and json.loads(
            stamp.read_text()) == wanted:
        return 0.0
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in (STORE_NAME, STORE_NAME + "-wal", STORE_NAME + "-shm", stamp.name):
        (directory / leftover).unlink(missing_ok=True)
    started = time.perf_counter()
    rng = np.random.default_rng(shape.seed)
    store = Store.open(directory)
    store.db.execute("PRAGMA synchronous=OFF")  # a synthetic store: no need to survive a crash
    env = "env-scale"
    store.put_environment(env, {"hostname": "scale", "cpu": {"model": "synthetic",
                                                              "logical_cpus": 2}})
    configs = configurations(n)
    reruns = set(rng.choice(n, int(n * shape.reruns), replace=False).tolist())
    for i, (model, backend, variant, batch) in enumerate(configs):
        gpu, estimated = i % 2 == 0, i % 3 == 2
        spec = spec_for(model, backend, variant, batch, gpu)
        key = spec_key(spec)
        for _ in range(2 if i in reruns else 1):
            result = synthetic_result(rng, shape, MODELS.index(model), batch, gpu, estimated,
                                      failed=rng.random() < shape.failed)
            store.add_run(spec, key, env, result, git_sha="0" * 40, git_dirty=False,
                          started_at="2026-12-01T00:00:00+00:00",
                          finished_at="2026-12-01T00:02:00+00:00", wall_s=120.0,
                          log_path=f"logs/{i}.log")
    store.close()
    stamp.write_text(json.dumps(wanted))
    return time.perf_counter() - started


# runs the CLI and, on the way out, writes the process's own peak RSS (VmHWM: the high-water
# mark of its address space since exec) to stderr
CLI = '''
import atexit, runpy, sys

def peak():
    try:
        with open("/proc/self/status") as status:
            kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return
    sys.stderr.write(f"\\n{PEAK} {kib}\\n")

atexit.register(peak)
sys.argv = ["optbench", *sys.argv[1:]]
runpy.run_module("optbench", run_name="__main__")
'''
PEAK = "store-scale-peak-kib"


def timed(command: list[str], stdout: Path | None = None) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, exit code) of one subprocess: its VmHWM where it reports
    one, else os.wait4's ru_maxrss."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    with open(stdout or os.devnull, "wb") as sink:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.PIPE, env=env)
        assert child.stderr is not None
        errors = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped: tell Popen
    code = child.returncode
    if code not in (0, 1):
        sys.stderr.write(errors.decode(errors="replace")[-2000:])
    marks = [line.split()[1] for line in errors.decode(errors="replace").splitlines()
             if line.startswith(PEAK + " ")]
    return seconds, (int(marks[-1]) if marks else usage.ru_maxrss) / 1024, code


def commands(directory: Path) -> dict[str, tuple[list[str], Path | None]]:
    cli = [sys.executable, "-c", CLI.replace("{PEAK}", PEAK)]
    out = str(directory)
    return {
        "export csv": ([*cli, "export", "--out", out, "--format", "csv"],
                       directory / "export.csv"),
        "export json": ([*cli, "export", "--out", out, "--format", "json"],
                        directory / "export.json"),
        "recommend": ([*cli, "recommend", "--out", out], directory / "recommend.txt"),
        "report": ([*cli, "report", "--out", out, "--dest", str(directory / "report"),
                    "--name", "scale"], None),
    }


def measure(directory: Path, n: int, shape: Shape) -> list[dict]:
    built_s = build(directory, n, shape)
    size_mb = (directory / STORE_NAME).stat().st_size / 2**20
    rows = []
    for name, (command, stdout) in commands(directory).items():
        seconds, rss_mib, code = timed(command, stdout)
        limit_s, limit_mib = TARGETS[name]
        ok = code in (0, 1) and seconds <= limit_s and (limit_mib is None or rss_mib <= limit_mib)
        rows.append({"configurations": n, "store_mb": size_mb, "built_s": built_s,
                     "command": name, "seconds": seconds, "peak_rss_mib": rss_mib,
                     "exit": code, "target": f"{limit_s:g} s" + (
                         f" / {limit_mib / 1024:g} GB" if limit_mib else ""), "ok": ok})
    page = directory / "report" / "scale" / "index.html"
    if page.is_file():
        rows[-1]["html_mb"] = page.stat().st_size / 2**20
    return rows


def breakdown(directory: Path) -> dict[str, float]:
    """Where the report's time goes, stage by stage, in this process."""
    from optbench.carbon import carbon_settings
    from optbench.report.analysis import analyse
    from optbench.report.data import load
    from optbench.report.figures import draw_group
    from optbench.report.html import render_html
    from optbench.report.markdown import render_markdown
    from optbench.report.recommend import Constraints, recommend
    from optbench.report.serving import serving_views

    carbon, out, stages = carbon_settings(), directory / "breakdown", {}
    clock = time.perf_counter()

    def stage(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = now - clock
        clock = now

    data = load([directory], carbon, None)
    stage("load (store -> rows)")
    groups = analyse(data.rows)
    stage("analyse (fronts, overlaps, deltas)")
    recs = [recommend(g, Constraints()) for g in groups]
    serving = serving_views(groups, data.serving, Constraints())
    stage("recommend")
    figures = {f"{g.model}|{g.metric}": draw_group(g, out / "figures") for g in groups}
    stage("figures (matplotlib)")
    render_markdown(data, groups, recs, carbon, figures, serving)
    stage("markdown")
    render_html(data, groups, recs, carbon, "scale", serving)
    stage("html")
    return stages


def table(rows: list[dict]) -> str:
    lines = ["| configurations | store MB | command | seconds | peak RSS MiB | target | ok |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        extra = f" (index.html {r['html_mb']:.1f} MB)" if "html_mb" in r else ""
        lines.append(f"| {r['configurations']:,} | {r['store_mb']:.0f} | {r['command']}{extra} "
                     f"| {r['seconds']:.2f} | {r['peak_rss_mib']:.0f} | {r['target']} | "
                     f"{'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "optbench-bench",
                        help="where the stores are built and cached")
    parser.add_argument("--latencies", type=int, default=Shape.latencies)
    parser.add_argument("--samples", type=int, default=Shape.samples)
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the report's stages in process at the largest size")
    args = parser.parse_args()
    shape = Shape(latencies=args.latencies, samples=args.samples)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}")
    rows = []
    for n in sizes:
        directory = args.dir / f"store-{n}"
        measured = measure(directory, n, shape)
        if measured[0]["built_s"]:
            print(f"built {directory} ({n:,} configurations) in {measured[0]['built_s']:.0f} s")
        rows += measured
    print(table(rows))
    if args.breakdown:
        stages = breakdown(args.dir / f"store-{max(sizes)}")
        print("\n| report stage (in process) | seconds |\n|---|---|")
        for name, seconds in stages.items():
            print(f"| {name} | {seconds:.2f} |")
    largest = [r for r in rows if r["configurations"] == max(sizes)]
    return 0 if all(r["ok"] for r in largest) else 1


if __name__ == "__main__":
    sys.exit(main())
