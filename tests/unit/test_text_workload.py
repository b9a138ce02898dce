"""Text workload pieces that need no model: corpus split, perplexity math, agreement."""

import math

import numpy as np
import pytest

from optbench.errors import RecipeError
from optbench.run.parse import parse_recipe
from optbench.workloads.corpus import Document, pydocs, split, text_files
from optbench.workloads.text import TextGeneration, TextOutputs, nll_from_logits, text_quality


def test_pydocs_split_is_by_document_and_stable():
    docs = pydocs()
    train, heldout = split(docs)
    assert len(docs) > 100 and 0.05 < len(heldout) / len(docs) < 0.2
    assert not {d.name for d in train} & {d.name for d in heldout}
    assert Document("topics/for", "x").heldout == Document("topics/for", "other").heldout


def test_text_files_reads_a_directory(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.md").write_text("world")
    (tmp_path / "c.bin").write_bytes(b"\0")
    assert [d.text for d in text_files(tmp_path)] == ["hello", "world"]


def test_nll_from_logits_matches_a_hand_computation():
    logits = np.array([[[0.0, np.log(3.0)], [np.log(2.0), 0.0], [5.0, 5.0]]])  # (1, 3, 2)
    ids = np.array([[0, 1, 0]])
    # position 0 predicts id 1: p = 3/4; position 1 predicts id 0: p = 2/3
    expected = [-math.log(3 / 4), -math.log(2 / 3)]
    assert nll_from_logits(logits, ids)[0] == pytest.approx(expected)


def test_text_quality_perplexity_and_agreement_by_hand():
    nll = np.full((2, 4), math.log(10.0))
    tokens = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    reference = np.array([[1, 2, 9, 4], [5, 6, 7, 8]])
    q = text_quality(TextOutputs(tokens, nll), reference)
    m = {x.name: x.value for x in q.metrics}
    assert q.primary == "perplexity" and q.higher_is_better is False
    assert m["perplexity"] == pytest.approx(10.0)
    assert m["perplexity_tokens"] == 8
    assert m["token_agreement"] == pytest.approx(7 / 8)
    assert m["prefix_agreement"] == pytest.approx((2 / 4 + 4 / 4) / 2)
    assert m["identical_generations"] == pytest.approx(0.5)


def test_text_datasets_are_validated():
    TextGeneration.validate_dataset("pydocs", "p")
    with pytest.raises(RecipeError, match="pydocs"):
        TextGeneration.validate_dataset("pydoc", "p")
    with pytest.raises(RecipeError, match="does not exist"):
        TextGeneration.validate_dataset("textfile:/nonexistent/x.txt", "p")


def test_a_language_model_gets_the_text_workload_by_default():
    recipe = parse_recipe({"name": "r", "model": "tiny-llama", "backends": ["torch"],
                           "workload": {"new_tokens": 16}})
    assert recipe.workload.kind == "text" and recipe.workload.new_tokens == 16
    assert parse_recipe({"name": "r", "model": "mnist-cnn",
                         "backends": ["torch"]}).workload.kind == "vision"
    with pytest.raises(RecipeError, match="new_tokens"):
        parse_recipe({"name": "r", "model": "tiny-llama", "backends": ["torch"],
                      "workload": {"new_tokens": 0}})


def test_weight_only_quantization_is_for_language_models_on_runtimes_that_have_it():
    from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
    from optbench.backends import BACKENDS
    from optbench.transforms.weight_only import WeightOnly, WeightOnlyConfig

    lm = ModelArtifact("m", HF_CAUSAL_LM, (), 10, path="/x", digest="d")
    int4 = WeightOnly(WeightOnlyConfig(bits=4))
    assert int4.supports(BACKENDS.get("openvino"), "cpu", lm)
    assert int4.apply(lm, None).quantization == "woq-int4"
    vision = ModelArtifact("v", "torch", (3, 8, 8), 10)
    assert "language models" in int4.supports(BACKENDS.get("ort"), "cpu", vision).reason
    int8 = WeightOnly(WeightOnlyConfig(bits=8))
    assert "no weight-only int8" in int8.supports(BACKENDS.get("vllm"), "cuda", lm).reason
    stacked = int4.apply(lm, None)
    assert not int8.supports(BACKENDS.get("torch"), "cpu", stacked)
    with pytest.raises(ValueError):
        WeightOnlyConfig(bits=3)


def test_an_unreachable_hub_id_is_a_clear_error(tmp_path, monkeypatch):
    from optbench.errors import UsageError
    from optbench.models import build_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(UsageError, match="no Hugging Face hub or hub cache"):
        build_model("someorg/no-such-model", None, tmp_path)


def test_int8_does_not_stack_on_weight_only_weights():
    from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
    from optbench.backends import BACKENDS
    from optbench.transforms.precision import Int8

    lm = ModelArtifact("m", HF_CAUSAL_LM, (), 10, path="/x", digest="d")
    woq = lm.derive("woq-int4", quantization="woq-int4")
    assert "already quantized" in Int8().supports(BACKENDS.get("ort"), "cpu", woq).reason
    assert Int8().supports(BACKENDS.get("ort"), "cpu", lm)


def test_requests_longer_than_the_context_are_refused_up_front(tmp_path):
    import json

    from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
    from optbench.errors import UsageError
    from optbench.run.recipe import WorkloadSpec

    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 48}))
    lm = ModelArtifact("m", HF_CAUSAL_LM, (), 10, path=str(tmp_path), digest="d")
    workload = TextGeneration(WorkloadSpec(kind="text", prompt_tokens=32, new_tokens=32), lm,
                              None, tmp_path)
    with pytest.raises(UsageError, match="exceed the model's context of 48 tokens"):
        workload.check()


def test_generation_pads_with_end_of_sequence_when_a_tokenizer_has_no_pad():
    from types import SimpleNamespace

    from optbench.backends.lm.hf import pad_token_id, step_streamer

    assert pad_token_id(SimpleNamespace(pad_token_id=None, eos_token_id=7)) == 7
    assert pad_token_id(SimpleNamespace(pad_token_id=2, eos_token_id=7)) == 2
    calls = []
    streamer = step_streamer(lambda: calls.append(1))
    for value in ("prompt", "step 1", "step 2"):
        streamer.put(value)
    assert streamer.steps == 2 and len(calls) == 2  # the prompt is not a decoding step
    assert type(step_streamer(lambda: None)) is type(streamer)  # one class, reused
