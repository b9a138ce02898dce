"""How much does optbench's harness add to a runtime's own latency and throughput?

For ort and openvino, the same loaded session / compiled model is driven two ways, in
alternating rounds so that machine drift hits both alike:
  - optbench: MeasuredLoop.latency_pass and load_trial (what every run reports);
  - bare: the runtime's own API in a plain Python loop (session.run / infer_request.infer).
For openvino, `benchmark_app` (OpenVINO's own tool) is also run on the same IR with the
same settings. Each round pairs one optbench and one bare measurement; the overhead is the
median of the per-round ratios, which cancels slow drift on a shared machine.
A null backend (infer does nothing) gives the harness's absolute cost per iteration.

Usage: python benchmarks/harness_overhead.py [--models mnist-cnn,resnet50] [--rounds 5]
Prints a Markdown table; docs/benchmarks.md records the figures seen.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from optbench.backends import BACKENDS
from optbench.backends.base import LoadContext
from optbench.cache import cache_root
from optbench.measure.loop import MeasuredLoop
from optbench.measure.presets import Preset
from optbench.models import build_model

PROTOCOL = Preset("bench", warmup_min_s=1, warmup_max_s=5, latency_min_iters=20,
                    latency_min_s=0.5, latency_max_s=3, window_min_s=0.5, trials_min=1,
                    trials_max=1, idle_s=0, eval_cap=None, window_periods=0)


class NullBackend:
    """infer does nothing: what remains is the harness's own cost per iteration."""

    name = "null"

    def infer(self, inputs):
        return inputs

    def infer_timed(self, inputs):
        return inputs, None

    def synchronize(self):
        pass


def harness_cost_ns() -> tuple[float, float]:
    """(latency-pass, load-trial) harness cost per iteration in ns, on a null backend."""
    loop = MeasuredLoop(NullBackend(), 1, [], PROTOCOL)
    items = [object()] * 8
    lat = statistics.median(loop.latency_pass(items)[0])
    trial = loop.load_trial(0, items, 1.0)
    return lat * 1e9, trial.window_s / trial.samples * 1e9


def bare_call(backend) -> callable:
    """The runtime's own inference call on the backend's loaded object, no optbench layer."""
    if backend.name == "ort":
        session = backend.session
        return lambda feeds: session.run(None, feeds)
    request = backend.request

    def ov_infer(tensor):
        request.set_input_tensor(tensor)
        request.infer()

    return ov_infer


def bare_latency(call, items, seconds: float) -> list[float]:
    times, start, i = [], time.perf_counter(), 0
    while time.perf_counter() - start < seconds or len(times) < 50:
        t0 = time.perf_counter_ns()
        call(items[i % len(items)])
        times.append((time.perf_counter_ns() - t0) / 1e9)
        i += 1
    return times


def bare_throughput(call, items, seconds: float, batch: int) -> float:
    start, n = time.perf_counter(), 0
    while True:
        call(items[n % len(items)])
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n * batch / elapsed


def benchmark_app_median_ms(
    xml: Path, batch: int, shape: tuple[int, ...], threads: int
) -> float | None:
    tool = shutil.which("benchmark_app") or shutil.which(
        "benchmark_app", path=str(Path(sys.executable).parent))
    if tool is None:
        return None
    # One stream, synchronous requests, f32: the settings optbench's openvino backend uses.
    cmd = [tool, "-m", str(xml), "-d", "CPU", "-hint", "none", "-nstreams", "1", "-api", "sync",
           "-nthreads", str(threads), "-infer_precision", "f32", "-t", "5",
           "-shape", f"[{batch},{','.join(map(str, shape))}]"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    match = re.search(r"Median:\s+([\d.]+) (ms|us)", out)
    if not match:
        return None
    return float(match.group(1)) / (1000 if match.group(2) == "us" else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mnist-cnn,resnet50")
    parser.add_argument("--backends", default="ort,openvino")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args()
    cache = cache_root()
    rows = []
    for model in args.models.split(","):
        artifact = build_model(model, None, cache)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8 * args.batch_size, *artifact.input_shape)).astype(np.float32)
        batches = [x[i * args.batch_size:(i + 1) * args.batch_size] for i in range(8)]
        for name in args.backends.split(","):
            backend = BACKENDS.get(name)(None, "cpu")
            backend.load(artifact, LoadContext(cache / "backends", args.batch_size, "cpu"))
            prepared = [backend.prepare(b) for b in batches]
            loop = MeasuredLoop(backend, args.batch_size, [], PROTOCOL)
            loop.warm_up(prepared)
            call = bare_call(backend)
            opt_lat, bare_lat, opt_thr, bare_thr = [], [], [], []
            for r in range(args.rounds):
                # alternate which goes first, so neither always follows the other
                for first in ((0, 1) if r % 2 == 0 else (1, 0)):
                    if first == 0:
                        opt_lat.append(statistics.median(loop.latency_pass(prepared)[0]))
                        trial = loop.load_trial(0, prepared, PROTOCOL.window_min_s)
                        opt_thr.append(trial.samples / trial.window_s)
                    else:
                        bare_lat.append(statistics.median(bare_latency(call, prepared, 0.5)))
                        bare_thr.append(bare_throughput(call, prepared, PROTOCOL.window_min_s,
                                                        args.batch_size))
            tool_ms = None
            if name == "openvino":
                tool_ms = benchmark_app_median_ms(backend.model_path, args.batch_size,
                                                  artifact.input_shape, backend.threads)
            backend.close()
            lat_ratios = sorted(o / b for o, b in zip(opt_lat, bare_lat))
            thr_ratios = sorted(o / b for o, b in zip(opt_thr, bare_thr))
            lat_ratio, thr_ratio = statistics.median(lat_ratios), statistics.median(thr_ratios)
            spread = (thr_ratios[len(thr_ratios) // 4], thr_ratios[3 * len(thr_ratios) // 4])
            rows.append((model, name, statistics.median(opt_lat) * 1e3,
                         statistics.median(bare_lat) * 1e3, lat_ratio - 1,
                         statistics.median(opt_thr), statistics.median(bare_thr),
                         1 - thr_ratio, spread, tool_ms))
    lat_ns, trial_ns = harness_cost_ns()
    print(f"harness cost per iteration on a null backend: latency pass {lat_ns:.0f} ns, "
          f"load trial {trial_ns:.0f} ns\n")
    print("| model | backend | p50 optbench ms | p50 bare ms | latency overhead | "
          "throughput optbench /s | throughput bare /s | throughput loss (IQR of rounds) | "
          "benchmark_app p50 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m, b, lo, lb, lov, to, tb, tl, (q1, q3), tool in rows:
        print(f"| {m} | {b} | {lo:.4g} | {lb:.4g} | {lov:+.2%} | {to:.4g} | {tb:.4g} | "
              f"{tl:+.2%} ({1 - q3:+.1%} .. {1 - q1:+.1%}) | "
              f"{'-' if tool is None else f'{tool:.4g}'} |")


if __name__ == "__main__":
    main()
