"""Contract tests over every registered transform, meter and workload."""

import dataclasses

import pytest

from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
from optbench.backends.base import Availability
from optbench.cache import cache_root
from optbench.meters import METERS
from optbench.meters.base import Meter, MeterContext
from optbench.results.schema import METHODS
from optbench.transforms import TRANSFORMS
from optbench.transforms.base import Stage, Transform
from optbench.workloads import WORKLOADS
from optbench.workloads.base import Workload

# What each built-in transform is applied to here, with the tiniest options that still run
# the real step (a step or two of training on 64 real digits).
TINY = {
    "distill": {"width": 0.25, "epochs": 0.05, "batch_size": 16},
    "prune": {"sparsity": 0.5, "finetune_epochs": 0.05, "batch_size": 16},
}
# The model each transform runs on here ("gpu": only where a CUDA device is, as for fp16).
SUBJECT = {"distill": "mnist-cnn", "prune": "mnist-cnn", "int8": "fake-mlp",
           "bf16": "mnist-cnn", "fp16": "gpu", "woq": "tiny-llama-test",
           "refit": "mnist-knn"}
# Too slow for a contract test (a pt2e export, about 20 s): its new artifact, digest and
# lineage are checked in tests/unit/test_transforms.py::test_qat_yields_an_int8_qdq_model_that_
# keeps_accuracy, its use by every runtime in tests/integration/test_transforms_e2e.py.
COVERED_ELSEWHERE = {"qat"}


@pytest.fixture(scope="module")
def plugin_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("plugin-contract")


def subject(kind, cache):
    """(artifact, backend class, device, workload) a transform is applied to here."""
    from optbench.models import build_model, resolve_model
    from optbench.run.recipe import WorkloadSpec

    if kind == "fake-mlp":
        from optbench.testing.backend import FakeBackend

        return build_model("fake-mlp", None, cache), FakeBackend, "cpu", None
    if kind == "tiny-llama-test":
        # weight-only quantization only marks the artifact (runtimes do the work on load):
        # an hf-causal-lm artifact of the card's shape is enough, no training needed
        from optbench.backends.torch import TorchBackend

        card = resolve_model("tiny-llama-test").card
        artifact = ModelArtifact(card.name, HF_CAUSAL_LM, (), card.num_outputs,
                                 path=str(cache / "lm"), digest="tiny-llama-test-d")
        return artifact, TorchBackend, "cpu", None
    if kind == "mnist-knn":  # a classic model: refit fits it again on the training split
        pytest.importorskip("sklearn")
        from optbench.backends.sklearn import SklearnBackend
        from optbench.workloads.vision import VisionClassification

        artifact = build_model("mnist-knn", None, cache)
        workload = VisionClassification(WorkloadSpec(dataset="mnist", eval_samples=16,
                                                     train_samples=64),
                                        artifact, 16, cache_root() / "workloads")
        return artifact, SklearnBackend, "cpu", workload
    pytest.importorskip("torch")
    from optbench.backends.torch import TorchBackend
    from optbench.models.mnist_cnn import make_module
    from optbench.models.torchnet import torch_artifact
    from optbench.workloads.vision import VisionClassification

    card = resolve_model("mnist-cnn").card
    artifact = torch_artifact(card, make_module(8), "random init (contract test)", False)
    workload = VisionClassification(WorkloadSpec(dataset="mnist", eval_samples=16,
                                                 calibration_samples=4, train_samples=64),
                                    artifact, 16, cache_root() / "workloads")
    if kind == "gpu":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("fp16 runs where a backend has a native fp16 path: CUDA here")
        return artifact, TorchBackend, "cuda", workload
    return artifact, TorchBackend, "cpu", workload


@pytest.mark.parametrize("name", TRANSFORMS.names())
def test_transform_contract(name):
    cls = TRANSFORMS.get(name)
    assert issubclass(cls, Transform) and isinstance(cls.stage, Stage)
    assert dataclasses.is_dataclass(cls.Config)
    transform = cls(cls.Config())
    from optbench.testing.backend import FakeBackend

    artifact = ModelArtifact("m", "numpy", (4,), 2, digest="d")
    supported = transform.supports(FakeBackend, "cpu", artifact)
    assert isinstance(supported, Availability)
    assert supported or supported.reason.strip()


def test_every_builtin_transform_has_a_subject():
    builtin = {e.name for e in TRANSFORMS.entries() if e.origin == "builtin"}
    missing = builtin - set(SUBJECT) - COVERED_ELSEWHERE
    assert not missing, f"add a contract-test subject for {missing}"


@pytest.mark.parametrize("name", sorted(SUBJECT))
def test_transform_apply_makes_a_new_artifact_one_step_further(name, plugin_cache):
    """A stub that returns its input, or forgets the digest or the lineage, fails here."""
    import copy

    from optbench.meters.base import MeterContext
    from optbench.models import resolve_model
    from optbench.testing.traces import Constant, TraceMeter
    from optbench.transforms.base import TransformContext

    base, backend, device, workload = subject(SUBJECT[name], plugin_cache)
    cls = TRANSFORMS.get(name)
    transform = cls(cls.Config(**TINY.get(name, {})))
    supported = transform.supports(backend, device, base)
    assert supported, f"{name} should run on {base.name} with {backend.name} on {device}: " \
                      f"{supported.reason}"
    before = (base.digest, base.lineage, base.precision, base.quantization)
    weights = (copy.deepcopy(base.module.state_dict()) if base.format == "torch" else None)
    card = resolve_model(base.name).card if base.format == "torch" else None
    ctx = TransformContext(backend, device, workload, plugin_cache / "cache", card=card,
                           meters=lambda: [TraceMeter(MeterContext(), Constant(10.0))])
    out = transform.apply(base, ctx)
    assert isinstance(out, ModelArtifact) and out is not base
    assert out.digest and out.digest != base.digest
    assert out.lineage[:-1] == base.lineage and len(out.lineage) == len(base.lineage) + 1
    aliases = (name, *TRANSFORMS.entry(name).aliases)
    assert out.lineage[-1].startswith(aliases), out.lineage
    assert out.input_shape == base.input_shape and out.num_outputs == base.num_outputs
    # the input is never mutated
    assert (base.digest, base.lineage, base.precision, base.quantization) == before
    if weights is not None:
        import torch

        for key, value in base.module.state_dict().items():
            assert torch.equal(value, weights[key]), key
    # the backend can run what the step produced, or says why not
    runnable = backend.supports(out.format, out.precision, device)
    assert runnable or runnable.reason
    if cls.stage != Stage.RUNTIME:  # trained steps record their training
        (record,) = out.info["training"]
        assert record["steps"] > 0 and record["energy_j"] > 0


@pytest.mark.parametrize("name", METERS.names())
def test_meter_contract(name):
    cls = METERS.get(name)
    assert issubclass(cls, Meter) and cls.role in ("cpu", "gpu")
    ctx = MeterContext()
    available = cls.availability(ctx)
    if not available:
        assert available.reason
        return
    meter = cls(ctx)
    meter.open()
    try:
        meter.start()
        readings = meter.stop()
    finally:
        meter.close()
    assert readings
    for r in readings:
        assert r.method in METHODS
        assert r.energy_j is None or r.energy_j >= 0
        assert r.energy_j is not None or r.reason


# Each built-in workload with the small model the suite uses for it.
WORKLOAD_SUBJECT = {"vision": "fake-mlp", "text": "tiny-llama-test"}


@pytest.mark.parametrize("name", WORKLOADS.names())
def test_workload_contract(name, plugin_cache):
    """Inputs and Quality of the declared shapes; a stub workload fails here."""
    import numpy as np

    from optbench.models import build_model
    from optbench.run.recipe import WorkloadSpec
    from optbench.workloads.base import Quality

    cls = WORKLOADS.get(name)
    assert issubclass(cls, Workload) and cls.sample_unit
    builtin = {e.name for e in WORKLOADS.entries() if e.origin == "builtin"}
    if name not in builtin:
        pytest.skip(f"third-party workload {name}: no test model known here")
    assert name in WORKLOAD_SUBJECT, f"add a contract-test model for workload '{name}'"
    model = WORKLOAD_SUBJECT[name]
    if model == "tiny-llama-test":
        pytest.importorskip("transformers")
    # the session's cache (tests/conftest.py), as the runs of test_llm_e2e use: tiny-llama-test
    # trains once (about 10 s), then is shared
    artifact = build_model(model, None, cache_root())
    n = 8
    spec = WorkloadSpec(kind=name, eval_samples=n, calibration_samples=3, prompt_tokens=8,
                        new_tokens=4)
    workload = cls(spec, artifact, n, cache_root() / "workloads")
    workload.check()
    x = workload.eval_inputs()
    assert isinstance(x, np.ndarray) and len(x) == n
    if cls.generative:  # prompts of prompt_tokens token ids
        assert x.shape == (n, spec.prompt_tokens) and np.issubdtype(x.dtype, np.integer)
    else:
        assert x.shape == (n, *artifact.input_shape) and x.dtype == np.dtype(artifact.input_dtype)
    calibration = workload.calibration_inputs()
    assert isinstance(calibration, list)
    assert len(calibration) <= spec.calibration_samples
    eval_rows = {row.tobytes() for row in x}
    for c in calibration:
        assert c.shape == (1, *x.shape[1:]) and c.dtype == x.dtype
        assert c[0].tobytes() not in eval_rows  # disjoint from the evaluation data
    if not cls.generative:
        assert len(calibration) == spec.calibration_samples  # int8 needs something to calibrate
    split = workload.train_split()
    if split is not None:
        tx, ty = split
        assert tx.shape[1:] == x.shape[1:] and len(tx) == len(ty) > 0
    # judge the reference against itself: perfect fidelity, and the declared primary metric
    if cls.generative:
        from optbench.workloads.text import TextOutputs

        reference = np.zeros((n, spec.new_tokens), dtype=np.int64)
        windows = workload.perplexity_windows
        outputs = TextOutputs(reference.copy(), np.ones((len(windows), windows.shape[1] - 1)))
    else:
        reference = np.random.default_rng(0).standard_normal((n, artifact.num_outputs))
        outputs = reference.copy()
    quality = workload.quality(outputs, reference)
    assert isinstance(quality, Quality) and isinstance(quality.higher_is_better, bool)
    values = {m.name: m.value for m in quality.metrics}
    assert len(values) == len(quality.metrics) and quality.primary in values
    assert all(np.isfinite(v) for v in values.values())
    agreement = {"top1_agreement", "token_agreement"} & set(values)
    assert agreement and all(values[k] == 1.0 for k in agreement)
    assert workload.describe()["workload"] == cls.name
