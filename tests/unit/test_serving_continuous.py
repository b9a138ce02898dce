"""Continuous batching against a scripted engine: requests join the running batch between
steps, each gets its own first token and completion, the concurrency cap holds, a failed
step still completes its requests; then the same worker under real LoadGen traffic, and
the serving loop choosing it when the runtime has an engine.

The engine's script: a request added before a step is prefilled by it (its first token);
every step gives each request in flight one token; a request finishes with its last one.
"""

import threading
import time

import numpy as np
import pytest

from optbench.backends.lm.base import CausalLM, Generation, TokenEvent
from optbench.measure.presets import PRESETS
from optbench.measure.serving import server
from optbench.measure.serving.continuous import ContinuousServedModel
from optbench.measure.serving.executors import TextExecutor
from optbench.measure.serving.ledger import Bounds
from optbench.measure.serving.loop import ServingGenerationLoop
from optbench.measure.serving.scenario import Scenario

VOCAB = 50
PROMPTS = np.arange(24).reshape(6, 4)


def greedy(prompt, n):
    """The scripted model's tokens: token i is (last prompt token + i) % VOCAB."""
    return (prompt[-1] + np.arange(1, n + 1)) % VOCAB


class ScriptedEngine:
    def __init__(self, step_s=0.0, on_step=None, fail_at=()):
        self.step_s, self.on_step, self.fail_at = step_s, on_step, set(fail_at)
        self.flight = {}  # id -> [prompt, tokens wanted, tokens produced]
        self.waiting = []
        self.history = []  # per step: the ids it advanced
        self.aborted = []
        self.steps = 0

    def add(self, request_id, prompt_ids, new_tokens):
        self.waiting.append((request_id, [np.asarray(prompt_ids), new_tokens, 0]))

    def step(self):
        self.steps += 1
        if self.on_step:
            self.on_step(self.steps)
        if self.step_s:
            time.sleep(self.step_s)
        self.flight.update(self.waiting)
        self.waiting = []
        if self.steps in self.fail_at:
            raise RuntimeError(f"step {self.steps} failed")
        events = []
        for rid, state in list(self.flight.items()):
            state[2] += 1
            done = state[2] == state[1]
            events.append(TokenEvent(rid, 1, first=state[2] == 1, finished=done,
                                     token_ids=greedy(state[0], state[1]) if done else None))
            if done:
                del self.flight[rid]
        self.history.append(sorted(e.request_id for e in events))
        return events

    def has_unfinished(self):
        return bool(self.flight or self.waiting)

    def abort(self, request_ids):
        self.aborted += request_ids
        for rid in request_ids:
            self.flight.pop(rid, None)


class RecordingSut:
    """LoadGen's completion calls, recorded in order (stands in for LoadgenSut)."""

    def __init__(self, total_samples, issue, flush):
        self.calls = []
        self.callback_errors = []

    def first_token(self, ids):
        self.calls += [("first", i) for i in ids]

    def complete(self, ids, tokens=None):
        self.calls += [("complete", i, tokens) for i in ids]

    def close(self):
        pass


def executor(new_tokens):
    reference = np.stack([greedy(p, new_tokens) for p in PROMPTS])
    return TextExecutor(None, PROMPTS, reference, new_tokens)


def served(engine, new_tokens=8, max_batch=4, monkeypatch=None, max_wait_ms=0.0):
    if monkeypatch is not None:
        monkeypatch.setattr(server, "LoadgenSut", RecordingSut)
    return ContinuousServedModel(executor(new_tokens), engine,
                                 Scenario(max_wait_ms=max_wait_ms), max_batch, len(PROMPTS))


def wait_for(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def start(model):
    """A fresh point with the model serving on a thread of its own (ServingRun serves on
    the calling thread while LoadGen issues on another; here the test issues)."""
    model.reset()
    worker = threading.Thread(target=model.work, daemon=True)
    worker.start()
    return worker


def stop(model, worker):
    model.queue.close()
    worker.join(timeout=10)
    assert not worker.is_alive()


def serve(model, batch, expect):
    """Issue one batch of (response id, prompt index); wait for `expect` completions."""
    worker = start(model)
    model.issue(batch)
    wait_for(lambda: len(model.ledger.done) >= expect)
    stop(model, worker)


def test_a_request_joins_the_running_batch_and_finishes_on_its_own(monkeypatch):
    model = None

    def arrive(step):  # the second request arrives while the first one decodes
        if step == 3:
            model.issue([(102, 1)])

    engine = ScriptedEngine(on_step=arrive)
    model = served(engine, new_tokens=8, monkeypatch=monkeypatch)
    serve(model, [(101, 0)], expect=2)
    # steps 1-3: the first request alone; it joins at step 4, 5 steps after its own end
    assert engine.history == [[1]] * 3 + [[1, 2]] * 5 + [[2]] * 3
    calls = model.sut.calls
    assert calls == [("first", 101), ("first", 102), ("complete", 101, 8),
                     ("complete", 102, 8)]
    a, b = sorted(model.ledger.done, key=lambda d: d.arrival_ns)
    assert a.tokens == b.tokens == 8
    # its first token came while the first request was still decoding: no static batch
    assert a.first_token_ns < b.first_token_ns < a.done_ns < b.done_ns
    assert b.first_token_ns >= b.arrival_ns
    assert (a.batch, b.batch) == (2, 2)  # 13 requests-in-flight over 8 steps each
    assert model.executor.agreement() == (2, 2)
    assert not model.ledger.errors and model.queue_empty.is_set()
    summary = model.ledger.summary(a.arrival_ns, b.done_ns + 1)
    assert summary["tokens"] == 16 and summary["completed"] == 2
    assert summary["ttft_p50_s"] > 0 and summary["tpot_p50_s"] > 0


def test_max_batch_caps_the_requests_in_flight(monkeypatch):
    engine = ScriptedEngine()
    model = served(engine, new_tokens=4, max_batch=2, monkeypatch=monkeypatch)
    serve(model, [(1, 0), (2, 1), (3, 2)], expect=3)
    # the third waits in the queue (where a saturated point's backlog can be dropped)
    # until a slot frees, then joins at the next step
    assert engine.history == [[1, 2]] * 4 + [[3]] * 4
    assert [c for c in model.sut.calls if c[0] == "complete"] == [
        ("complete", 1, 4), ("complete", 2, 4), ("complete", 3, 4)]
    assert model.executor.agreement()[0] == 3


def test_a_failed_step_completes_its_requests_once_and_serving_goes_on(monkeypatch):
    engine = ScriptedEngine(fail_at={2})
    model = served(engine, new_tokens=4, monkeypatch=monkeypatch)
    worker = start(model)
    model.issue([(1, 0), (2, 1)])
    wait_for(lambda: len(model.sut.calls) >= 4)
    model.issue([(3, 2)])
    wait_for(lambda: bool(model.ledger.done))
    stop(model, worker)
    # step 1 gave both their first token; step 2 failed: completed with no tokens, no
    # second FirstTokenComplete, and aborted in the engine
    assert model.sut.calls[:4] == [("first", 1), ("first", 2), ("complete", 1, 1),
                                   ("complete", 2, 1)]
    assert sorted(engine.aborted) == [1, 2]
    assert model.ledger.errors == ["RuntimeError: step 2 failed"]
    (done,) = model.ledger.done  # the later request was served normally
    assert done.tokens == 4 and model.sut.calls[-1] == ("complete", 3, 4)


def test_under_loadgen_every_request_gets_its_own_first_token_and_tokens():
    pytest.importorskip("mlperf_loadgen")
    from optbench.measure.serving.traffic import Traffic

    engine = ScriptedEngine(step_s=0.002)
    model = served(engine, new_tokens=4, max_batch=4)
    try:
        worker = start(model)
        verdict = model.sut.run(Traffic("server", 1.5, 20.0, token_latencies=True))
        stop(model, worker)
    finally:
        model.close()
    done = model.ledger.done
    assert not model.sut.callback_errors and not model.ledger.errors
    assert len(done) == len(model.ledger.arrivals) == int(verdict["result_query_count"]) > 10
    assert all(d.tokens == 4 and d.arrival_ns <= d.first_token_ns < d.done_ns for d in done)
    assert model.executor.agreement()[0] == len(done)
    figures = model.ledger.summary(min(model.ledger.arrivals), max(d.done_ns for d in done) + 1,
                                   Bounds(ttft_s=1.0))
    assert figures["goodput_per_s"] == pytest.approx(figures["achieved_rate_per_s"])
    assert figures["ttft_p50_s"] < figures["latency_p50_s"]
    # LoadGen saw the first tokens too (token mode), timed from its scheduled arrivals,
    # just before our issue-time stamps (seen: 0.25 ms more than ours on average)
    loadgen_ttft_s = verdict["result_first_token_mean_latency_ns"] / 1e9
    assert figures["ttft_mean_s"] - 1e-4 <= loadgen_ttft_s <= figures["ttft_mean_s"] + 0.01


class EngineLM(CausalLM):
    """The scripted model as a CausalLM: static `generate` for the loop's passes, and
    its engine for serving."""

    def __init__(self):
        self.scripted = ScriptedEngine(step_s=0.001)

    def generate(self, prompts, new_tokens, on_token):
        for _ in range(new_tokens):
            on_token()
        return Generation(np.stack([greedy(p, new_tokens) for p in prompts]), new_tokens)

    def nll(self, ids):
        return np.full((len(ids), ids.shape[1] - 1), np.log(4.0))

    def engine(self):
        return self.scripted


def test_the_serving_loop_batches_continuously_when_the_runtime_has_an_engine():
    pytest.importorskip("mlperf_loadgen")
    lm = EngineLM()
    scenario = Scenario(kind="server", rates_per_s=(10.0,), duration_s=1.0)
    loop = ServingGenerationLoop(lm, scenario, 4, 4, [], PRESETS["smoke"])
    out = loop.run_text(PROMPTS, np.zeros((2, 5), dtype=np.int64))
    details = out.serving
    assert details["batching"] == "continuous" and details["variable_batch"] is True
    assert details["served_agreement"] == 1.0 and lm.scripted.history
    (point,) = details["points"]
    assert point["figures"]["ttft_p50_s"] > 0 and point["figures"]["tpot_p50_s"] > 0
    assert not point["figures"]["errors"]
    assert not [t for t in threading.enumerate() if t.name.startswith("optbench-serving")]
