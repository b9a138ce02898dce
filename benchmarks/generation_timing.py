"""Do optbench's token counts, TTFT and TPOT agree with a hand-timed generate loop?

For each runtime the same loaded model is timed two ways, alternating call by call:
  - optbench: GenerationLoop.request_timings (the streamer hook: TTFT = call start ->
    first step's tokens on the host; TPOT = first -> last token over the n - 1 gaps);
  - by hand, without optbench's streamer: `model.generate(max_new_tokens=1)` end to end
    is the TTFT; `generate(max_new_tokens=n)` end to end minus it, over n - 1, is the TPOT;
    tokens are counted from the returned ids (len(output) - len(prompt)).
Each round is one optbench call and one hand-timed pair, in alternating order, so drift on
a shared machine hits both alike; the figures are medians over rounds. Target: within 3%.

Usage: python benchmarks/generation_timing.py [--model tiny-llama] [--backends torch,ort,openvino]
       [--rounds 100] [--new-tokens 32]
Prints a Markdown table; docs/benchmarks.md records the figures seen.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from optbench.backends import BACKENDS
from optbench.backends.base import LoadContext, load_causal_lm
from optbench.cache import cache_root
from optbench.measure.generation import GenerationLoop
from optbench.measure.presets import Preset
from optbench.models import build_model

ONE_CALL = Preset("bench", warmup_min_s=0, warmup_max_s=1, latency_min_iters=1,
                    latency_min_s=0, latency_max_s=600, window_min_s=0, trials_min=1,
                    trials_max=1, idle_s=0, eval_cap=None, latency_max_iters=1)


def load(backend: str, artifact):
    """The backend's own text generator (its lm_loader), with its default options."""
    return load_causal_lm(BACKENDS.get(backend), artifact,
                          LoadContext(cache_root() / "backends", 1, "cpu"))


def by_hand(lm, prompt: np.ndarray, n: int) -> tuple[float, float, int]:
    """(first-token time s, n-token time s, tokens counted) from two plain generate calls."""
    ids = torch.from_numpy(prompt)
    common = {"attention_mask": torch.ones_like(ids), "do_sample": False, "num_beams": 1,
              "pad_token_id": lm.pad_token_id}
    with torch.inference_mode():
        t0 = time.perf_counter()
        lm.model.generate(input_ids=ids, max_new_tokens=1, min_new_tokens=1, **common)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = lm.model.generate(input_ids=ids, max_new_tokens=n, min_new_tokens=n, **common)
        total = time.perf_counter() - t0
    return first, total, out.shape[1] - ids.shape[1]


def by_optbench(loop: GenerationLoop, prompt: np.ndarray) -> tuple[float, float, int]:
    """(TTFT s, TPOT s, tokens) of one call through optbench's latency pass; the tokens are
    what optbench's load trials count: the size of the ids the call returned."""
    _, timing = loop.request_timings([prompt])
    tokens = int(loop.lm.generate(prompt, loop.new_tokens, lambda: None).tokens.size)
    return timing["ttft_s"][0], timing["tpot_s"][0], tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny-llama")
    parser.add_argument("--backends", default="torch,ort,openvino")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    artifact = build_model(args.model, None, cache_root())
    prompt = np.random.default_rng(0).integers(10, artifact.num_outputs - 10, size=(1, 32))
    print("| backend | TTFT optbench ms | TTFT by hand ms | Δ TTFT | TPOT optbench ms | "
          "TPOT by hand ms | Δ TPOT | tokens optbench / by hand |")
    print("|---|---|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        lm = load(backend, artifact)
        for _ in range(3):
            lm.generate(prompt, args.new_tokens, lambda: None)
        loop = GenerationLoop(lm, 1, args.new_tokens, [], ONE_CALL)
        ours, firsts, totals, counted = [], [], [], set()
        for index in range(args.rounds):
            if index % 2:  # which goes first alternates, so order effects cancel too
                first, total, tokens = by_hand(lm, prompt, args.new_tokens)
                ours.append(by_optbench(loop, prompt))
            else:
                ours.append(by_optbench(loop, prompt))
                first, total, tokens = by_hand(lm, prompt, args.new_tokens)
            firsts.append(first)
            totals.append(total)
            counted.add((ours[-1][2], tokens))
        ttft, tpot = (statistics.median(x[i] for x in ours) for i in range(2))
        hand_ttft = statistics.median(firsts)
        hand_tpot = (statistics.median(totals) - hand_ttft) / (args.new_tokens - 1)
        print(f"| {backend} | {ttft * 1e3:.2f} | {hand_ttft * 1e3:.2f} | "
              f"{(ttft / hand_ttft - 1) * 100:+.1f}% | {tpot * 1e3:.3f} | "
              f"{hand_tpot * 1e3:.3f} | {(tpot / hand_tpot - 1) * 100:+.1f}% | "
              f"{', '.join(f'{a} / {b}' for a, b in sorted(counted))} |", flush=True)
        lm.close()


if __name__ == "__main__":
    main()
