"""vLLM's continuous-batching path against a stand-in for its documented LLMEngine API.

The stand-in is the `LLM` object's `llm_engine`: `add_request(request_id: str, prompt:
TokensPrompt, params: SamplingParams)`, `step() -> list[RequestOutput]` (one per request
the iteration advanced; `outputs[0].token_ids` cumulative, `finished`),
`has_unfinished_requests()`, `abort_request(list[str])`. It schedules like vLLM: requests
added before a step are prefilled by it (prefill that yields no token yet is modelled by
`prefill_steps`), every running request gains one token per step, and the LLM's own
requests (ids "0", "1", ...) share the engine.
What it checks: the request ids and sampling parameters we send, new tokens from the
cumulative ids, the first-token and finished flags, foreign requests ignored, aborts;
then a serving run on the stand-in batching continuously under real LoadGen traffic.
"""

import importlib.machinery
import sys
import types
from enum import Enum

import numpy as np
import pytest

from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
from optbench.backends import BACKENDS
from optbench.backends.base import LoadContext, load_causal_lm
from optbench.backends.lm.base import TokenEvent
from optbench.measure.presets import PRESETS
from optbench.measure.serving.loop import ServingGenerationLoop
from optbench.measure.serving.scenario import Scenario


class RequestOutputKind(Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


class SamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update({"prompt_logprobs": None,
                              "output_kind": RequestOutputKind.CUMULATIVE, **kwargs})


def tokens_for(prompt_ids, n):
    return [(prompt_ids[-1] + i) % 7 for i in range(1, n + 1)]


class FakeLLMEngine:
    def __init__(self, prefill_steps=1):
        self.prefill_steps = prefill_steps
        self.requests = {}  # id -> {"ids", "params", "out", "age"}
        self.added = []
        self.aborted = []

    def add_request(self, request_id, prompt, params):
        assert isinstance(request_id, str) and request_id not in self.requests
        assert params.output_kind is RequestOutputKind.CUMULATIVE
        self.requests[request_id] = {"ids": prompt["prompt_token_ids"], "params": params,
                                     "out": [], "age": 0}
        self.added.append((request_id, prompt, params))

    def step(self):
        outs = []
        for rid, r in list(self.requests.items()):
            r["age"] += 1
            if r["age"] < self.prefill_steps:  # a chunked prefill: no token yet
                outs.append(self._output(rid, r, False))
                continue
            r["out"].append(tokens_for(r["ids"], r["params"].max_tokens)[len(r["out"])])
            finished = len(r["out"]) == r["params"].max_tokens
            outs.append(self._output(rid, r, finished))
            if finished:
                del self.requests[rid]
        return outs

    @staticmethod
    def _output(rid, r, finished):
        return types.SimpleNamespace(
            request_id=rid, finished=finished,
            outputs=[types.SimpleNamespace(token_ids=tuple(r["out"]))])

    def has_unfinished_requests(self):
        return bool(self.requests)

    def abort_request(self, request_ids):
        assert isinstance(request_ids, list)
        self.aborted += request_ids
        for rid in request_ids:
            self.requests.pop(rid, None)


class FakeLLM:
    def __init__(self, model, tokenizer=None, **kwargs):
        self.kwargs = kwargs
        self.llm_engine = FakeLLMEngine()

    def generate(self, prompts, params, use_tqdm=True):
        """The offline path the loop's quality and latency passes use."""
        outs = []
        for p in prompts:
            ids = p["prompt_token_ids"]
            logprobs = ([None] + [{t: types.SimpleNamespace(logprob=-1.0)} for t in ids[1:]]
                        if params.prompt_logprobs else None)
            outs.append(types.SimpleNamespace(
                outputs=[types.SimpleNamespace(token_ids=tokens_for(ids, params.max_tokens))],
                metrics=None, prompt_logprobs=logprobs))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    vllm.__version__ = "0.33.0"
    vllm.LLM, vllm.SamplingParams = FakeLLM, SamplingParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.RequestOutputKind, sampling.SamplingParams = RequestOutputKind, SamplingParams
    for name, module in (("vllm", vllm), ("vllm.inputs", inputs),
                         ("vllm.sampling_params", sampling)):
        monkeypatch.setitem(sys.modules, name, module)
    return vllm


ARTIFACT = ModelArtifact("lm", HF_CAUSAL_LM, (), 7, path="/models/lm", digest="d")


def load(tmp_path, batch_size=2):
    return load_causal_lm(BACKENDS.get("vllm"), ARTIFACT,
                          LoadContext(tmp_path, batch_size, "cuda"))


def test_the_engine_is_the_llm_objects_own_and_sends_documented_requests(fake_vllm, tmp_path):
    lm = load(tmp_path)
    engine = lm.engine()
    assert engine is lm.engine() and engine.engine is lm.llm.llm_engine
    engine.add(7, np.array([3, 4, 5]), 3)
    ((request_id, prompt, params),) = lm.llm.llm_engine.added
    # our ids never collide with the LLM object's own counter ("0", "1", ...)
    assert request_id == "optbench-7" and prompt == {"prompt_token_ids": [3, 4, 5]}
    assert all(type(t) is int for t in prompt["prompt_token_ids"])
    assert (params.temperature, params.max_tokens, params.min_tokens) == (0.0, 3, 3)
    assert params.ignore_eos is True and params.repetition_penalty == 1.0


def test_steps_become_token_events_per_request(fake_vllm, tmp_path):
    lm = load(tmp_path)
    raw = lm.llm.llm_engine
    raw.prefill_steps = 2  # the first step of each request yields no token
    engine = lm.engine()
    engine.add(1, np.array([0, 1]), 3)
    raw.add_request("0", {"prompt_token_ids": [9]}, SamplingParams(max_tokens=5))
    assert engine.step() == []  # prefill only; the LLM's own request is not ours
    engine.add(2, np.array([0, 2]), 2)  # joins between steps
    assert engine.step() == [TokenEvent(1, 1, first=True, finished=False)]
    assert engine.step() == [TokenEvent(1, 1, first=False, finished=False),
                             TokenEvent(2, 1, first=True, finished=False)]
    last = engine.step()
    assert [(e.request_id, e.new_tokens, e.first, e.finished) for e in last] == [
        (1, 1, False, True), (2, 1, False, True)]
    assert last[0].token_ids.tolist() == tokens_for([0, 1], 3)
    assert last[1].token_ids.tolist() == tokens_for([0, 2], 2)
    assert engine.has_unfinished()  # the LLM's own request still runs
    engine.add(3, np.array([5]), 4)
    engine.abort([3])
    assert raw.aborted == ["optbench-3"] and "optbench-3" not in raw.requests


def test_a_serving_run_on_vllm_batches_continuously(fake_vllm, tmp_path):
    pytest.importorskip("mlperf_loadgen")
    lm = load(tmp_path, batch_size=4)
    scenario = Scenario(kind="server", rates_per_s=(20.0,), duration_s=1.0)
    loop = ServingGenerationLoop(lm, scenario, 4, 4, [], PRESETS["smoke"])
    prompts = np.arange(24).reshape(6, 4)
    out = loop.run_text(prompts, np.zeros((2, 5), dtype=np.int64))
    details = out.serving
    assert details["batching"] == "continuous" and details["served_agreement"] == 1.0
    figures = details["points"][0]["figures"]
    assert figures["completed"] > 0 and figures["tokens"] == 4 * figures["completed"]
    assert figures["ttft_p50_s"] > 0 and not figures["errors"]
    assert not lm.llm.llm_engine.requests  # every request finished in the engine
