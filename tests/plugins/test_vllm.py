"""The vLLM backend against a stand-in for vLLM's documented offline API (no GPU here).

The stand-in mimics the shapes of vllm.LLM.generate's RequestOutput: outputs[0].token_ids,
metrics (V1 RequestStateStats or V0 RequestMetrics, or None when log stats are off) and
prompt_logprobs (entry 0 None; then {token_id: Logprob}, always holding the actual token).
What it checks: the engine settings we pass, token counting, TTFT/TPOT from the engine's
metrics, perplexity from prompt logprobs, and the reason given when vLLM is missing.
The stand-in takes only what vLLM 0.33.0's LLM, EngineArgs and SamplingParams take
(vllm_signatures.py, read from the wheel) and rejects what they reject: an unknown
argument, load_format None, a quantization method the release does not have.
"""

import importlib.machinery
import math
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest
from vllm_signatures import (  # tests/plugins is on the path
    ENGINE_ARGS,
    LLM_ARGS,
    QUANTIZATION_METHODS,
    SAMPLING_FIELDS,
    VERSION,
)

from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
from optbench.backends import BACKENDS
from optbench.backends.base import LoadContext, load_causal_lm
from optbench.backends.lm.vllm_lm import request_times
from optbench.measure.generation import GenerationLoop
from optbench.measure.presets import PRESETS


@dataclass
class Logprob:
    logprob: float
    rank: int = 1


@dataclass
class V1Stats:
    first_token_latency: float
    first_token_ts: float
    last_token_ts: float


@dataclass
class V0Metrics:
    arrival_time: float
    first_token_time: float
    last_token_time: float


class FakeLLM:
    instances: list = []

    def __init__(self, model, **kwargs):
        unknown = set(kwargs) - set(LLM_ARGS) - set(ENGINE_ARGS)
        if unknown:  # EngineArgs is a dataclass: **kwargs it lacks are a TypeError
            raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument "
                            f"{sorted(unknown)[0]!r}")
        if "load_format" in kwargs and not isinstance(kwargs["load_format"], str):
            raise ValueError("load_format: Input should be a valid string "
                             f"[input_value={kwargs['load_format']!r}]")  # LoadConfig (pydantic)
        quantization = kwargs.get("quantization")
        if quantization is not None and quantization not in QUANTIZATION_METHODS:
            raise ValueError(f"Unknown quantization method: {quantization}")
        self.model, self.kwargs = model, kwargs
        FakeLLM.instances.append(self)

    def generate(self, prompts, params, use_tqdm=True):
        outs = []
        for p in prompts:
            ids = p["prompt_token_ids"]
            n = params.max_tokens
            tokens = [(ids[-1] + i) % 7 for i in range(1, n + 1)]
            metrics = None
            if not self.kwargs.get("disable_log_stats", True):
                metrics = V1Stats(0.05, 100.0, 100.0 + 0.01 * (n - 1))
            logprobs = None
            if params.prompt_logprobs:
                logprobs = [None] + [{t: Logprob(math.log(0.5)), -1: Logprob(-9.0)}
                                     for t in ids[1:]]
            outs.append(types.SimpleNamespace(
                outputs=[types.SimpleNamespace(token_ids=tokens)], metrics=metrics,
                prompt_logprobs=logprobs))
        return outs


class FakeSamplingParams:
    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(SAMPLING_FIELDS)
        if unknown:
            raise TypeError(f"SamplingParams got an unexpected keyword argument {unknown}")
        self.__dict__.update({"prompt_logprobs": None, "detokenize": True, **kwargs})


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    vllm.__version__ = VERSION
    vllm.LLM, vllm.SamplingParams = FakeLLM, FakeSamplingParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    FakeLLM.instances = []
    return vllm


ARTIFACT = ModelArtifact("lm", HF_CAUSAL_LM, (), 7, path="/models/lm", digest="d")


def load(artifact, batch_size, tmp_path):
    return load_causal_lm(BACKENDS.get("vllm"), artifact, LoadContext(tmp_path, batch_size, "cuda"))


def test_without_vllm_the_backend_says_why():
    if "vllm" in sys.modules or BACKENDS.get("vllm").availability():
        pytest.skip("vLLM is installed here")
    reason = BACKENDS.get("vllm").availability().reason
    assert "not installed" in reason and "GPU" in reason


def test_vllm_has_no_vision_side():
    cls = BACKENDS.get("vllm")
    assert cls.formats == (HF_CAUSAL_LM,) and cls.lm_loader is not None
    with pytest.raises(TypeError, match="abstract"):
        cls(None, "cuda")  # no load / infer: it is only ever a text loader
    assert "cannot load a torch model" in cls.supports("torch", "fp32", "cuda").reason


def test_engine_settings_tokens_timing_and_perplexity(fake_vllm, tmp_path):
    assert BACKENDS.get("vllm").availability()
    lm = load(ARTIFACT, 4, tmp_path)
    settings = FakeLLM.instances[0].kwargs
    assert settings["disable_log_stats"] is False  # else RequestOutput.metrics is None
    assert settings["dtype"] == "float32"  # explicit: "auto" would turn fp32 into fp16
    assert settings["max_num_seqs"] == 4 and settings["enable_prefix_caching"] is False
    prompts = np.array([[1, 2, 3], [4, 5, 6]])
    g = lm.generate(prompts, 5, lambda: pytest.fail("vLLM offline does not stream"))
    assert g.tokens.shape == (2, 5) and g.steps is None
    assert g.engine_ttft_s == pytest.approx([0.05, 0.05])
    assert g.engine_tpot_s == pytest.approx([0.01, 0.01])
    assert lm.nll(prompts) == pytest.approx(np.full((2, 2), -math.log(0.5)))
    assert lm.describe()["runtime"] == f"vllm {VERSION}"
    assert "load_format" not in settings and "quantization" not in settings  # never None


def test_the_generation_loop_reports_engine_timing(fake_vllm, tmp_path):
    loop = GenerationLoop(load(ARTIFACT, 2, tmp_path), 2, 4, [], PRESETS["smoke"])
    out = loop.run_text(np.arange(12).reshape(4, 3), np.zeros((2, 5), dtype=np.int64))
    assert out.generation["timing_source"] == "the runtime's own request metrics"
    assert out.generation["ttft_s"][0] == pytest.approx(0.05)
    assert all(t.samples == 4 * t.requests for t in out.trials if t.phase == "load")


def test_request_times_reads_both_engine_shapes():
    out = lambda m, n: types.SimpleNamespace(  # noqa: E731
        metrics=m, outputs=[types.SimpleNamespace(token_ids=list(range(n)))])
    ttft, tpot = request_times([out(V0Metrics(10.0, 10.2, 10.5), 4)])
    assert ttft == pytest.approx([0.2]) and tpot == pytest.approx([0.1])
    assert request_times([out(None, 4)]) == (None, None)


def test_weight_only_is_refused_with_the_reason_and_old_vllm_too(fake_vllm, tmp_path):
    from optbench.errors import Unavailable

    assert "bitsandbytes" not in QUANTIZATION_METHODS  # gone since 0.28
    for tag in ("woq-int4", "woq-int8"):
        with pytest.raises(Unavailable, match="NF4 .*blocks of 64.*removed in vLLM 0.28"):
            load(ARTIFACT.derive(tag, quantization=tag), 1, tmp_path)
    assert BACKENDS.get("vllm").weight_only_bits == ()
    fake_vllm.__version__ = "0.11.0"
    with pytest.raises(Unavailable, match="no request metrics"):
        load(ARTIFACT, 1, tmp_path)


def test_the_stand_in_rejects_what_vllm_rejects():
    with pytest.raises(ValueError, match="valid string"):
        FakeLLM("m", load_format=None)
    with pytest.raises(ValueError, match="Unknown quantization method: bitsandbytes"):
        FakeLLM("m", quantization="bitsandbytes")
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_num_seq'"):
        FakeLLM("m", max_num_seq=4)
    with pytest.raises(TypeError):
        FakeSamplingParams(max_token=3)


def test_timed_calls_do_not_detokenize(fake_vllm, tmp_path):
    from optbench.backends.lm.vllm_lm import sampling_params

    assert sampling_params(4).detokenize is False
