"""Is a text-generation variant faster than its baseline on this machine? An A/B test.

A recipe run measures each configuration in its own time slot, so on a shared machine a
busy minute can favour either side. Here every variant is loaded at once and they take
turns call by call (A B C A B C ...) for `--rounds` rounds, each call timed by optbench's
own latency pass; the figures are medians over rounds, and the ratio to the baseline comes
with a bootstrap 95% interval over rounds.

Usage: python benchmarks/variant_ab.py [--model tiny-llama] [--backend openvino]
       [--variants fp32,woq-int8,woq-int4] [--rounds 150] [--new-tokens 32]
Prints a Markdown table; docs/llm.md records the figures seen.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from generation_timing import ONE_CALL  # a sibling script: run from benchmarks/

from optbench.backends import BACKENDS
from optbench.backends.base import LoadContext, load_causal_lm
from optbench.cache import cache_root
from optbench.measure.generation import GenerationLoop
from optbench.models import build_model


def variant(artifact, name: str):
    if name == "fp32":
        return artifact
    if name == "int8":
        return artifact.derive("int8", precision="int8")
    if name.startswith("woq-int"):
        return artifact.derive(name, quantization=name)
    raise SystemExit(f"unknown variant {name!r}: fp32, int8, woq-int8, woq-int4")


def ratio_interval(a: list[float], b: list[float], draws: int = 2000) -> tuple[float, float]:
    """Bootstrap 95% interval of median(a) / median(b), resampling paired rounds."""
    rng = np.random.default_rng(0)
    x, y = np.asarray(a), np.asarray(b)
    idx = rng.integers(0, len(x), size=(draws, len(x)))
    ratios = np.median(x[idx], axis=1) / np.median(y[idx], axis=1)
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny-llama")
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--variants", default="fp32,woq-int8,woq-int4")
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    base = build_model(args.model, None, cache_root())
    prompt = np.random.default_rng(0).integers(10, base.num_outputs - 10, size=(1, 32))
    loops = {}
    for name in args.variants.split(","):
        lm = load_causal_lm(BACKENDS.get(args.backend), variant(base, name),
                            LoadContext(cache_root() / "backends", 1))
        loops[name] = GenerationLoop(lm, 1, args.new_tokens, [], ONE_CALL)
        for _ in range(3):
            loops[name].request_timings([prompt])
    ttft: dict[str, list[float]] = {n: [] for n in loops}
    tpot: dict[str, list[float]] = {n: [] for n in loops}
    for _ in range(args.rounds):
        for name, loop in loops.items():
            _, timing = loop.request_timings([prompt])
            ttft[name].append(timing["ttft_s"][0])
            tpot[name].append(timing["tpot_s"][0])
    first = next(iter(loops))
    print(f"| {args.backend} variant | TTFT p50 ms | TPOT p50 ms | TPOT / {first} (95% CI) |")
    print("|---|---|---|---|")
    for name in loops:
        low, high = ratio_interval(tpot[name], tpot[first])
        ratio = statistics.median(tpot[name]) / statistics.median(tpot[first])
        print(f"| {name} | {statistics.median(ttft[name]) * 1e3:.2f} | "
              f"{statistics.median(tpot[name]) * 1e3:.3f} | {ratio:.3f} ({low:.3f}-{high:.3f}) |")


if __name__ == "__main__":
    main()
