"""Classic models: numba's kernels against the library's own predict_proba (and treelite
where asked), latency at batch 1 and 64, and how much of the fastest latency is
optbench's loop (these are microseconds).

For each model x runtime x batch, the loaded backend is timed two ways in alternating
rounds: optbench's MeasuredLoop.latency_pass (what a run reports) and a bare loop around
`backend.infer` (benchmarks/harness_overhead.py's). A null backend gives the harness's own
cost per iteration.

    python benchmarks/classic_latency.py [--models mnist-logreg,mnist-forest,mnist-gbt]
        [--backends sklearn,numba] [--rounds 3]

Prints a Markdown table; docs/benchmarks.md and docs/classic.md record the figures seen.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness_overhead import PROTOCOL, bare_latency, harness_cost_ns  # noqa: E402

from optbench.backends import BACKENDS  # noqa: E402
from optbench.backends.base import LoadContext  # noqa: E402
from optbench.cache import cache_root  # noqa: E402
from optbench.measure.loop import MeasuredLoop  # noqa: E402
from optbench.models import build_model  # noqa: E402
from optbench.workloads.datasets import load_mnist  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mnist-logreg,mnist-forest,mnist-gbt")
    ap.add_argument("--backends", default="sklearn,numba")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cache = cache_root()
    digits = load_mnist(cache / "workloads").test_x
    lat_ns, _ = harness_cost_ns()
    print(f"harness cost per iteration (null backend): {lat_ns / 1e3:.2f} µs\n")
    print("| model | runtime | batch | p50 optbench µs | p50 bare µs | optbench/bare | "
          "µs per sample |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        artifact = build_model(model, None, cache)
        for name in args.backends.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                backend = BACKENDS.get(name)(None, "cpu")
                backend.load(artifact, LoadContext(cache / "backends", batch))
                items = [backend.prepare(digits[i:i + batch])
                         for i in range(0, len(digits) - batch + 1, batch)][:16]
                loop = MeasuredLoop(backend, batch, [], PROTOCOL)
                ours, bare = [], []
                for _ in range(args.rounds):  # alternating: drift hits both alike
                    ours.append(statistics.median(loop.latency_pass(items)[0]))
                    bare.append(statistics.median(bare_latency(backend.infer, items, 0.5)))
                o, b = statistics.median(ours) * 1e6, statistics.median(bare) * 1e6
                ratio = statistics.median(x / y for x, y in zip(ours, bare))
                print(f"| {model} | {name} | {batch} | {o:.1f} | {b:.1f} | {ratio:.3f} | "
                      f"{o / batch:.2f} |", flush=True)
                backend.close()


if __name__ == "__main__":
    main()
