"""The text-generation loop against a hand count: a scripted runtime on a fake clock.

Each call: `prefill` seconds until the first token, then `step` seconds per further token.
With n tokens, TTFT = prefill and TPOT = step exactly, the call lasts prefill + (n-1) step,
and a window counts n tokens per request, each once.
"""

import numpy as np
import pytest

from optbench.backends.lm.base import CausalLM, Generation
from optbench.measure.generation import GenerationLoop
from optbench.measure.presets import Preset
from optbench.meters.base import MeterContext
from optbench.results.schema import EnergyReading, Trial
from optbench.results.summary import generation_summary, summarize_run
from optbench.testing.clock import FakeClock
from optbench.testing.traces import Constant, TraceMeter

PROTOCOL = Preset("t", warmup_min_s=0.0, warmup_max_s=0.5, latency_min_iters=10,
                    latency_min_s=0.1, latency_max_s=10, window_min_s=2.0, trials_min=3,
                    trials_max=3, idle_s=0.5, eval_cap=None, window_periods=0)


class ScriptedLM(CausalLM):
    """Greedy 'generation': token i of a request is (last prompt token + i) % 50."""

    def __init__(self, clock, prefill_s=0.2, step_s=0.01, announce=True, short_by=0):
        self.clock, self.prefill_ns, self.step_ns = clock, int(prefill_s * 1e9), int(step_s * 1e9)
        self.announce, self.short_by = announce, short_by
        self.calls = 0

    def generate(self, prompts, new_tokens, on_token):
        self.calls += 1
        n = new_tokens - self.short_by
        self.clock.now += self.prefill_ns
        for i in range(n):
            if i:
                self.clock.now += self.step_ns
            if self.announce:
                on_token()
        tokens = (prompts[:, -1:] + np.arange(1, n + 1)) % 50
        steps = n if self.announce else None
        ttft = None if self.announce else [self.prefill_ns / 1e9] * len(prompts)
        tpot = None if self.announce else [self.step_ns / 1e9] * len(prompts)
        return Generation(tokens, steps, ttft, tpot)

    def nll(self, ids):
        return np.full((len(ids), ids.shape[1] - 1), np.log(4.0))


def make(batch_size=2, new_tokens=8, watts=100.0, **lm_options):
    clock = FakeClock()
    lm = ScriptedLM(clock, **lm_options)
    meter = TraceMeter(MeterContext(clock=clock), Constant(watts))
    loop = GenerationLoop(lm, batch_size, new_tokens, [meter], PROTOCOL, clock=clock,
                          sleep=clock.sleep)
    return loop, lm, meter


PROMPTS = np.arange(5 * 4).reshape(5, 4)
WINDOWS = np.zeros((3, 6), dtype=np.int64)


def test_ttft_tpot_and_latency_match_the_script_exactly():
    loop, _, _ = make(prefill_s=0.2, step_s=0.01, new_tokens=8)
    out = loop.run_text(PROMPTS, WINDOWS)
    timing = out.generation
    assert timing["ttft_s"] and all(t == pytest.approx(0.2) for t in timing["ttft_s"])
    # TPOT divides the time between first and last token by the 7 gaps, not by 8 tokens
    assert all(t == pytest.approx(0.01) for t in timing["tpot_s"])
    assert all(lat == pytest.approx(0.2 + 7 * 0.01) for lat in out.latencies_s)
    assert timing["itl_count"] == 7 * len(out.latencies_s)
    assert timing["itl_percentiles_s"]["50"] == pytest.approx(0.01)
    assert timing["timing_source"] == "host clock at each decoding step"
    assert timing["short_calls"] == 0


def test_each_token_is_counted_once_in_energy_windows():
    loop, lm, _ = make(batch_size=2, new_tokens=8, prefill_s=0.2, step_s=0.01, watts=100.0)
    out = loop.run_text(PROMPTS, WINDOWS)
    loads = [t for t in out.trials if t.phase == "load"]
    call_s = 0.2 + 7 * 0.01
    calls = int(np.ceil(2.0 / call_s))  # whole calls until the 2 s window is over
    for trial in loads:
        assert trial.requests == 2 * calls
        assert trial.samples == 2 * calls * 8  # tokens from the returned ids, not assumed
        assert trial.window_s == pytest.approx(calls * call_s)
        energy = trial.total_energy_j()
        assert energy / trial.samples == pytest.approx(100.0 * call_s / 16)
    summary = generation_summary(out.generation, loads)
    assert summary["requests_per_s"] == pytest.approx(2 / call_s)
    assert summary["energy_per_request_j"] == pytest.approx(100.0 * call_s / 2)
    assert summary["ttft_p50_s"] == pytest.approx(0.2)
    assert summary["tpot_p50_s"] == pytest.approx(0.01)


def test_quality_pass_returns_aligned_tokens_and_nll():
    loop, _, _ = make(batch_size=2, new_tokens=3)
    out = loop.run_text(PROMPTS, WINDOWS)
    assert out.outputs.tokens.shape == (5, 3)  # the padded sixth prompt is dropped
    assert out.outputs.tokens[0].tolist() == [4, 5, 6]
    assert out.outputs.nll.shape == (3, 5)


def test_a_runtime_that_miscounts_its_steps_is_an_error():
    class Miscounting(ScriptedLM):
        def generate(self, prompts, new_tokens, on_token):
            g = super().generate(prompts, new_tokens, on_token)
            return Generation(g.tokens, g.steps + 1)

    clock = FakeClock()
    loop = GenerationLoop(Miscounting(clock), 1, 4, [], PROTOCOL, clock=clock, sleep=clock.sleep)
    with pytest.raises(RuntimeError, match="announced 5 decoding steps but returned 4"):
        loop.run_text(PROMPTS, WINDOWS)


def test_short_generations_are_counted_as_produced_and_reported():
    loop, _, _ = make(batch_size=1, new_tokens=8, short_by=2)
    out = loop.run_text(PROMPTS, WINDOWS)
    assert out.generation["short_calls"] > 0
    load = next(t for t in out.trials if t.phase == "load")
    assert load.samples == load.requests * 6


def test_engine_metrics_are_used_when_the_runtime_cannot_stream():
    loop, _, _ = make(announce=False, prefill_s=0.05, step_s=0.02)
    out = loop.run_text(PROMPTS, WINDOWS)
    assert out.generation["timing_source"] == "the runtime's own request metrics"
    assert out.generation["ttft_s"][0] == pytest.approx(0.05)
    assert out.generation["tpot_s"][0] == pytest.approx(0.02)
    assert out.generation["itl_count"] == 0


def test_summary_of_a_stored_text_run(tmp_path):
    from optbench.results.schema import RunResult
    from optbench.results.store import StoredRun

    reading = EnergyReading("cpu:estimate", 30.0, 3.0, "estimated", "test")
    trials = [Trial(1, "load", 3.0, 600, (reading,), requests=20)]
    result = RunResult("ok", quality_metric="perplexity", quality_higher_is_better=False,
                       trials=trials, details={"generation": {
                           "ttft_s": [0.1, 0.3, 0.2], "tpot_s": [0.01, 0.01, 0.02],
                           "new_tokens": 30, "timing_source": "host clock at each decoding step"},
                           "workload": {"sample_unit": "token"}})
    spec = {"model": {"ref": "m"}, "backend": {"name": "torch", "options": []},
            "variant": {"name": "fp32"}, "batch_size": 2, "device": "cpu"}
    run = StoredRun(1, "k", spec, "env", result, "0", None, None, "t", "t", 1.0, None)
    row = summarize_run(run)
    assert row["energy_per_sample_j"] == pytest.approx(30.0 / 600)  # per output token
    assert row["energy_per_request_j"] == pytest.approx(30.0 / 20)
    assert row["requests_per_s"] == pytest.approx(20 / 3.0)
    assert row["throughput_per_s"] == pytest.approx(600 / 3.0)  # tokens per second
    assert row["ttft_p50_s"] == pytest.approx(0.2)
    assert row["sample_unit"] == "token"
