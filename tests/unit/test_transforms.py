"""Training transforms on a small CNN and a learnable toy task: what each produces, what it
records, energy budgets, and the cache."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from optbench.artifact import ModelArtifact  # noqa: E402
from optbench.backends.torch import TorchBackend  # noqa: E402
from optbench.meters.base import MeterContext  # noqa: E402
from optbench.models import resolve_model  # noqa: E402
from optbench.models.mnist_cnn import make_module  # noqa: E402
from optbench.testing.traces import Constant, TraceMeter  # noqa: E402
from optbench.transforms.base import TransformContext  # noqa: E402
from optbench.transforms.distill import Distill, DistillConfig  # noqa: E402
from optbench.transforms.prune import Prune, PruneConfig  # noqa: E402
from optbench.transforms.qat import Qat, QatConfig  # noqa: E402

SHAPE = (1, 28, 28)


def toy_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten classes told apart by which horizontal band is bright: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.normal(0, 0.3, (n, *SHAPE)).astype(np.float32)
    for i, label in enumerate(y):
        x[i, 0, 2 * label + 4: 2 * label + 7, :] += 2.0
    return x, y


@dataclass
class ToyWorkload:
    dataset: str = "toy"
    labelled: bool = True

    def train_split(self):
        return toy_data(512, 0) if self.labelled else None


def trained_cnn(width: int = 8) -> ModelArtifact:
    torch.manual_seed(0)
    module = make_module(width)
    x, y = toy_data(512, 0)
    opt = torch.optim.Adam(module.parameters(), 2e-3)
    module.train()
    for _ in range(2):
        for i in range(0, 512, 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(
                module(torch.from_numpy(x[i:i + 64])), torch.from_numpy(y[i:i + 64])).backward()
            opt.step()
    module.eval()
    return ModelArtifact("toy-cnn", "torch", SHAPE, 10, module=module, digest=f"toy{width}",
                         weights="trained on toy bands")


def accuracy(module, n: int = 400) -> float:
    x, y = toy_data(n, 1)
    with torch.no_grad():
        return float((module(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def context(tmp_path, watts: float = 20.0, labelled: bool = True) -> TransformContext:
    card = resolve_model("mnist-cnn").card
    return TransformContext(TorchBackend, "cpu", ToyWorkload(labelled=labelled), tmp_path,
                            card=card,
                            meters=lambda: [TraceMeter(MeterContext(), Constant(watts))])


def conv_linear_weights(module):
    return [m.weight for m in module.modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def test_unstructured_prune_zeros_half_of_each_hidden_layer_and_records_training(tmp_path):
    base = trained_cnn()
    out = Prune(PruneConfig(sparsity=0.5, finetune_epochs=0.5, batch_size=32)).apply(
        base, context(tmp_path))
    *hidden, last = conv_linear_weights(out.module)
    for w in hidden:
        assert abs(float((w == 0).float().mean()) - 0.5) < 0.01
    assert float((last == 0).float().mean()) < 0.01  # the classifier is left whole
    assert out.info["nonzero_parameters"] < 0.6 * out.info["parameters"]
    assert out.info["parameters"] == sum(p.numel() for p in base.module.parameters())
    assert out.info["compressed_bytes"] < out.info["state_bytes"]
    (record,) = out.info["training"]
    assert record["transform"] == "prune-unstructured" and record["steps"] == 8
    assert record["energy_method"] == "measured-counter" and record["energy_j"] > 0
    assert record["energy_j"] == pytest.approx(20.0 * record["seconds"], rel=0.2)
    assert out.lineage == ("prune(unstructured,0.5,ft=0.5,budget=None)",)
    assert out.digest != base.digest
    assert accuracy(out.module) > 0.8
    assert all(float((w == 0).float().mean()) == 0 for w in conv_linear_weights(base.module))


def test_structured_prune_really_shrinks_the_network(tmp_path):
    base = trained_cnn(16)
    out = Prune(PruneConfig(sparsity=0.5, structured=True, finetune_epochs=1,
                            batch_size=32)).apply(base, context(tmp_path))
    dense = sum(p.numel() for p in base.module.parameters())
    assert out.info["parameters"] < 0.45 * dense
    assert out.info["macs"] > 0
    with torch.no_grad():
        logits = out.module(torch.zeros((3, *SHAPE)))  # reloaded program, dynamic batch
    assert logits.shape == (3, 10)
    assert accuracy(out.module) > 0.8


def test_distilled_student_is_smaller_and_learns_from_the_teacher(tmp_path):
    base = trained_cnn(32)
    out = Distill(DistillConfig(width=0.25, epochs=2, batch_size=32)).apply(
        base, context(tmp_path))
    assert out.info["parameters"] < 0.35 * sum(p.numel() for p in base.module.parameters())
    assert out.info["student"] == "mnist-cnn x0.25"
    assert accuracy(out.module) > 0.8
    assert out.info["training"][0]["epochs_completed"] == 2


def test_qat_yields_an_int8_qdq_model_that_keeps_accuracy(tmp_path):
    base = trained_cnn()
    out = Qat(QatConfig(epochs=1, batch_size=32)).apply(base, context(tmp_path))
    assert out.precision == "int8" and out.quantization == "qat-qdq"
    # the plugin contract (tests/plugins/test_other_plugins.py leaves qat to this test)
    assert out is not base and out.digest and out.digest != base.digest
    assert len(out.lineage) == 1 and out.lineage[0].startswith("qat(")
    assert base.precision == "fp32" and base.lineage == ()
    targets = {str(n.target) for n in out.module.graph.nodes if n.op == "call_function"}
    assert any("quantize_per_tensor" in t for t in targets), targets
    assert accuracy(out.module) > accuracy(base.module) - 0.05


def test_energy_budget_stops_training_and_says_so(tmp_path):
    base = trained_cnn()
    cfg = PruneConfig(sparsity=0.5, finetune_epochs=50, batch_size=32, energy_budget_j=1.0)
    out = Prune(cfg).apply(base, context(tmp_path, watts=1000.0))
    (record,) = out.info["training"]
    assert record["budget_exhausted"] and record["budget_j"] == 1.0
    assert record["steps"] == 20 and record["epochs_completed"] < 50
    assert "energy budget 1 J spent after 20 steps" in record["notes"]
    assert accuracy(out.module) > 0.5  # the quality reached is what gets measured


def test_trained_artifacts_are_cached_and_flagged(tmp_path):
    base = trained_cnn()
    transform = Prune(PruneConfig(sparsity=0.5, finetune_epochs=0.25, batch_size=32))
    first = transform.apply(base, context(tmp_path))
    second = transform.apply(base, context(tmp_path))
    a, b = first.info["training"][0], second.info["training"][0]
    assert not a["cached"] and b["cached"]
    assert b["energy_j"] == a["energy_j"]  # what it cost to make, not what reloading cost
    for p, q in zip(first.module.parameters(), second.module.parameters()):
        assert torch.equal(p, q)


def test_training_without_labels_is_unavailable_with_the_reason(tmp_path):
    from optbench.errors import Unavailable

    with pytest.raises(Unavailable, match="needs labelled training data"):
        Qat().apply(trained_cnn(), context(tmp_path, labelled=False))


def test_support_rules_for_composition():
    base = trained_cnn()
    quantized = base.derive("qat").__class__(**{**base.__dict__, "quantization": "qat-qdq",
                                                 "precision": "int8"})
    assert not Prune().supports(TorchBackend, "cpu", quantized)
    assert not Qat().supports(TorchBackend, "cpu", quantized)
    assert Qat().supports(TorchBackend, "cpu", base)

    class NoQdq(TorchBackend):
        name = "noqdq"
        runs_qdq_int8 = False

    why = Qat().supports(NoQdq, "cpu", base)
    assert not why and "Q/DQ" in why.reason


def test_config_validation():
    with pytest.raises(ValueError, match="sparsity"):
        PruneConfig(sparsity=1.5)
    with pytest.raises(ValueError, match="width"):
        DistillConfig(width=0)
