"""The measured loop for text generation: the same protocol as `optbench.measure.loop`, per request.

A call is one batch of requests (prompts in flight together), each generating exactly
`new_tokens` tokens. Warm-up, the idle baseline, the metered windows and the stop rule are
MeasuredLoop's; what differs is what is counted and timed:
- tokens are counted from the ids each call returns (never assumed), each token once;
- the latency pass times every call end to end, and the runtime's per-step callback gives
  time to first token (TTFT: call start -> first step's tokens on the host) and time per
  output token (TPOT: first -> last token, divided by the gaps between them, n - 1), so
  the first token is not counted twice (once in TTFT and again as a decode step);
- where a runtime cannot stream (vLLM offline), its own per-request metrics are used and
  labelled so (`timing_source`).
Energy per output token is a window's energy over the tokens completed in it; energy per
request is the same energy over the requests completed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from optbench.measure.contention import CpuContention
from optbench.measure.loop import Clock, LoopOutput, MeasuredLoop, make_batches
from optbench.measure.presets import Preset
from optbench.results.schema import Trial
from optbench.workloads.text import TextOutputs

PERPLEXITY_BATCH = 8


def _no_op() -> None:
    pass


@dataclass
class _Requests:
    """A CausalLM behind the loop's infer/synchronize, so the shared phases drive it."""

    lm: Any
    new_tokens: int

    def infer(self, prompts: np.ndarray) -> Any:
        return self.lm.generate(prompts, self.new_tokens, _no_op)

    def synchronize(self) -> None:
        self.lm.synchronize()


class GenerationLoop(MeasuredLoop):
    """Drives one loaded CausalLM through the protocol; `batch_size` requests per call."""

    def __init__(
        self,
        lm: Any,
        batch_size: int,
        new_tokens: int,
        meters: Sequence[Any],
        protocol: Preset,
        clock: Clock = time.monotonic_ns,
        sleep: Callable[[float], None] = time.sleep,
        on_phase: Callable[[str], None] = lambda phase: None,
        contention: CpuContention | None = None,
    ) -> None:
        # The shared phases count samples per call: here, the tokens a call should produce.
        super().__init__(_Requests(lm, new_tokens), batch_size * new_tokens, meters, protocol,
                         clock, sleep, on_phase, contention)
        self.lm = lm
        self.requests_per_call = batch_size
        self.new_tokens = new_tokens
        self.short_calls = 0

    def run_text(self, prompts: np.ndarray, perplexity_windows: np.ndarray,
                 served: Any = None) -> LoopOutput:
        out, batches = self.closed_loop_text(prompts, perplexity_windows)
        out.trials, out.window_s = self.trials_phase(batches, served, out.phases_s)
        out.generation["short_calls"] = self.short_calls  # trials' calls included
        return out

    def closed_loop_text(self, prompts: np.ndarray, perplexity_windows: np.ndarray
                         ) -> tuple[LoopOutput, list[np.ndarray]]:
        """Warm-up, quality and latency passes (no trials yet), and the prompt batches."""
        phases: dict[str, float] = {}
        batches, n_prompts = make_batches(prompts, self.requests_per_call)

        with self.phase(phases, "warmup_s", "warm-up"):
            warmup = self.warm_up(batches)
        with self.phase(phases, "accuracy_s", "quality pass (greedy tokens, perplexity)"):
            tokens, nll = self.quality_pass(batches, n_prompts, perplexity_windows)
        with self.phase(phases, "latency_s", "latency pass (TTFT, TPOT)"):
            latencies, timing = self.request_timings(batches)
        timing.update(new_tokens=self.new_tokens, requests_per_call=self.requests_per_call,
                      prompt_tokens=int(prompts.shape[1]), short_calls=self.short_calls)
        return LoopOutput(TextOutputs(tokens, nll), latencies, [], [], warmup, 0.0,
                          phases, generation=timing), batches

    def quality_pass(self, batches: list[np.ndarray], n_prompts: int,
                     perplexity_windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Greedy tokens of every prompt, and the per-token NLL of the held-out windows."""
        tokens = np.concatenate([self._generate(b, _no_op).tokens
                                 for b in batches])[:n_prompts]
        nll = np.concatenate([self.lm.nll(perplexity_windows[i:i + PERPLEXITY_BATCH])
                              for i in range(0, len(perplexity_windows), PERPLEXITY_BATCH)])
        return tokens, nll

    def _generate(self, prompts: np.ndarray, on_token: Callable[[], None]) -> Any:
        generation = self.lm.generate(prompts, self.new_tokens, on_token)
        rows, produced = generation.tokens.shape
        if rows != len(prompts):
            raise RuntimeError(f"{len(prompts)} prompts in, {rows} generations out")
        if generation.steps is not None and generation.steps != produced:
            raise RuntimeError(f"the runtime announced {generation.steps} decoding steps but "
                               f"returned {produced} tokens per request")
        if produced != self.new_tokens:
            self.short_calls += 1
        return generation

    def request_timings(self, batches: list[np.ndarray]) -> tuple[list[float], dict[str, Any]]:
        """Per call: end-to-end latency, TTFT and TPOT, until the preset's minimums."""
        p = self.protocol
        latencies: list[float] = []
        ttft: list[float] = []
        tpot: list[float] = []
        gaps: list[float] = []
        sources: set[str] = set()
        start = self.clock()
        while len(latencies) < p.latency_max_iters:
            item = self._next(batches)
            stamps: list[int] = []
            t0 = self.clock()
            generation = self._generate(item, self._stamper(stamps))
            self.lm.synchronize()
            t1 = self.clock()
            latencies.append((t1 - t0) / 1e9)
            if stamps:
                sources.add("host clock at each decoding step")
                ttft.append((stamps[0] - t0) / 1e9)
                if len(stamps) > 1:
                    tpot.append((stamps[-1] - stamps[0]) / 1e9 / (len(stamps) - 1))
                    gaps.extend(np.diff(stamps) / 1e9)
            elif generation.engine_ttft_s is not None:
                sources.add("the runtime's own request metrics")
                ttft.extend(generation.engine_ttft_s)
                tpot.extend(generation.engine_tpot_s or [])
            elapsed = (t1 - start) / 1e9
            if len(latencies) >= p.latency_min_iters and elapsed >= p.latency_min_s:
                break
            if elapsed >= p.latency_max_s and len(latencies) >= 3:
                break
        itl = np.asarray(gaps)
        return latencies, {
            "ttft_s": ttft, "tpot_s": tpot,
            "itl_percentiles_s": ({str(q): float(np.percentile(itl, q)) for q in (50, 90, 99)}
                                  if len(itl) else {}),
            "itl_count": int(len(itl)),
            "timing_source": "; ".join(sorted(sources)) or "none",
        }

    def _stamper(self, stamps: list[int]) -> Callable[[], None]:
        def stamp() -> None:
            stamps.append(self.clock())

        return stamp

    def load_trial(self, index: int, prepared: list[Any], window_s: float) -> Trial:
        """Whole calls for at least `window_s`; tokens and requests counted from the ids."""
        window_ns = int(window_s * 1e9)
        telemetry = self._open_window()
        t0 = self.clock()
        tokens = requests = 0
        while True:
            generation = self._generate(self._next(prepared), _no_op)
            tokens += int(generation.tokens.size)
            requests += int(generation.tokens.shape[0])
            if self.clock() - t0 >= window_ns:
                break
        self.lm.synchronize()
        trial = self._close_window(index, "load", t0, tokens, telemetry)
        return replace(trial, requests=requests)
