"""Distillation of a language model: a narrower student of the same architecture, trained
under the run's meters on the training documents, cached, and loadable by every runtime."""

import json
from pathlib import Path

import numpy as np
import pytest

from optbench.artifact import HF_CAUSAL_LM
from optbench.backends.torch import TorchBackend
from optbench.meters.base import MeterContext
from optbench.models import build_model, resolve_model
from optbench.testing.traces import Constant, TraceMeter
from optbench.transforms.base import TransformContext
from optbench.transforms.distill import Distill, DistillConfig
from optbench.transforms.distill_lm import narrower_config

pytestmark = pytest.mark.backend("torch")


def test_narrower_config_keeps_head_size_depth_and_vocabulary():
    from transformers import LlamaConfig

    teacher = LlamaConfig(vocab_size=100, hidden_size=256, intermediate_size=704,
                          num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2)
    student = narrower_config(teacher, 0.5)
    assert (student.num_attention_heads, student.num_key_value_heads) == (2, 1)
    assert student.hidden_size == 128 and student.head_dim == 64
    assert student.intermediate_size == 352 and student.num_hidden_layers == 4
    assert student.vocab_size == 100 and teacher.hidden_size == 256
    # grouped-query attention: key/value heads always divide the attention heads
    gqa = LlamaConfig(hidden_size=768, intermediate_size=2048, num_attention_heads=12,
                      num_key_value_heads=4)
    narrow = narrower_config(gqa, 0.6)
    assert narrow.num_attention_heads == 7 and 7 % narrow.num_key_value_heads == 0


def test_distilled_student_is_smaller_metered_and_cached(tmp_path):
    from transformers import AutoModelForCausalLM

    teacher = build_model("tiny-llama-test", None, tmp_path)
    ctx = TransformContext(TorchBackend, "cpu", None, tmp_path,
                           card=resolve_model("tiny-llama-test").card,
                           meters=lambda: [TraceMeter(MeterContext(), Constant(20.0))])
    step = Distill(DistillConfig(width=0.5, steps=4))
    assert step.supports(TorchBackend, "cpu", teacher)
    student = step.apply(teacher, ctx)
    assert student.format == HF_CAUSAL_LM and student.digest != teacher.digest
    assert student.info["parameters"] < teacher.info["parameters"]
    (record,) = student.info["training"]
    assert record["steps"] == 4 and record["energy_j"] > 0 and not record["cached"]
    model = AutoModelForCausalLM.from_pretrained(student.path)
    assert model.num_parameters() == student.info["parameters"]
    out = model.generate(input_ids=__import__("torch").tensor(np.array([[5, 6, 7]])),
                         max_new_tokens=2, min_new_tokens=2, do_sample=False)
    assert out.shape == (1, 5)
    again = step.apply(teacher, ctx)
    assert again.info["training"][0]["cached"] is True and again.path == student.path
    assert json.loads((Path(student.path) / "config.json").read_text())["hidden_size"] == 32
