"""Contract tests over every registered backend. A backend without settings here fails."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
from optbench.backends import BACKENDS
from optbench.backends.base import Availability, Backend, LoadContext, load_causal_lm
from optbench.errors import Unavailable

# What each backend is exercised with: the artifact kind and the precisions to load.
# Runtimes that cannot run on this machine (GPU-only) are checked for a clear reason.
SETTINGS = {
    "fake": {"artifact": "numpy", "precisions": ["fp32", "int8"]},
    "torch": {"artifact": "torch", "precisions": ["fp32", "bf16", "int8"]},
    "ort": {"artifact": "torch", "precisions": ["fp32", "int8"]},
    "openvino": {"artifact": "torch", "precisions": ["fp32", "bf16", "int8"]},
    "trt": {"artifact": "torch", "precisions": ["fp32", "fp16", "int8"], "device": "cuda"},
    "vllm": {"artifact": None, "precisions": []},
    "sklearn": {"artifact": "sklearn", "precisions": ["fp32"]},
    "numba": {"artifact": "sklearn", "precisions": ["fp32"]},
    "treelite": {"artifact": "sklearn", "precisions": ["fp32"]},
}


def tiny_torch_artifact() -> ModelArtifact:
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 10)).eval()
    return ModelArtifact("tiny", "torch", (3, 16, 16), 10, module=module, digest="tiny-v1")


def numpy_artifact() -> ModelArtifact:
    rng = np.random.default_rng(0)
    layers = [rng.standard_normal((3 * 16 * 16, 8)).astype(np.float32),
              rng.standard_normal((8, 10)).astype(np.float32)]
    return ModelArtifact("np", "numpy", (3, 16, 16), 10, module=layers, digest="np-v1",
                         reference_backend="fake")


def sklearn_artifact() -> ModelArtifact:
    pytest.importorskip("sklearn")
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3 * 16 * 16)).astype(np.float32)
    y = (x[:, :10].sum(1) > 0).astype(int) + (x[:, 10:20].sum(1) > 0)
    model = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(x, y)
    return ModelArtifact("forest", "sklearn", (3, 16, 16), 3, module=model, digest="rf-v1",
                         reference_backend="sklearn", info={"family": "forest"})


def reference(artifact: ModelArtifact, x: np.ndarray) -> np.ndarray:
    if artifact.format == "sklearn":
        return artifact.module.predict_proba(x.reshape(len(x), -1))
    if artifact.format == "numpy":
        h = np.maximum(x.reshape(len(x), -1) @ artifact.module[0], 0)
        return h @ artifact.module[1]
    import torch

    with torch.no_grad():
        return artifact.module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name", BACKENDS.names(include_hidden=True))
def test_every_backend_has_test_settings(name):
    assert name in SETTINGS, f"add contract-test settings for backend '{name}'"


@pytest.mark.parametrize("name", BACKENDS.names(include_hidden=True))
def test_static_contract(name):
    cls = BACKENDS.get(name)
    assert issubclass(cls, Backend)
    assert dataclasses.is_dataclass(cls.Config)
    cls.Config()  # every option has a default
    available = cls.availability()
    assert isinstance(available, Availability)
    if not available:
        assert len(available.reason) > 20, "an unavailable backend must say why"
    for device, precisions in cls.precisions.items():
        assert device in ("cpu", "cuda")
        assert set(precisions) <= {"fp32", "fp16", "bf16", "int8"}


@pytest.mark.parametrize("name", BACKENDS.names(include_hidden=True))
def test_the_two_contracts_match_the_formats(name, tmp_path):
    """A backend takes HF_CAUSAL_LM exactly when it has a text loader, and has a vision side
    (an instantiable Backend) exactly when it takes another format."""
    cls = BACKENDS.get(name)
    assert (HF_CAUSAL_LM in cls.formats) == (cls.lm_loader is not None)
    assert inspect.isabstract(cls) == (set(cls.formats) <= {HF_CAUSAL_LM})
    if cls.lm_loader is None:
        lm = ModelArtifact("lm", HF_CAUSAL_LM, (), 7, path=str(tmp_path), digest="d")
        device = next(iter(cls.precisions))
        with pytest.raises(Unavailable) as refused:
            load_causal_lm(cls, lm, LoadContext(tmp_path, 1, device))
        assert refused.value.reason == cls.supports(HF_CAUSAL_LM, "fp32", device).reason


@pytest.mark.parametrize("name", BACKENDS.names(include_hidden=True))
def test_load_infer_matches_reference(name, tmp_path):
    settings = SETTINGS[name]
    cls = BACKENDS.get(name)
    available = cls.availability()
    if not available:
        pytest.skip(f"{name}: {available.reason}")
    base = {"numpy": numpy_artifact, "sklearn": sklearn_artifact}.get(
        settings["artifact"], tiny_torch_artifact)()
    x = np.random.default_rng(1).standard_normal((4, *base.input_shape)).astype(np.float32)
    calibration = [x[i:i + 1] for i in range(4)] * 8
    expected = reference(base, x)
    device = settings.get("device", "cpu")
    for precision in settings["precisions"]:
        artifact = dataclasses.replace(base, precision=precision)
        backend = cls(None, device)
        try:
            backend.load(artifact, LoadContext(tmp_path, 4, device, calibration))
        except Unavailable as exc:
            assert precision != "fp32", f"{name} fp32 must load: {exc.reason}"
            continue
        try:
            out = backend.to_numpy(backend.infer(backend.prepare(x)))
            backend.synchronize()
            info = backend.describe()
        finally:
            backend.close()
        assert out.shape == expected.shape
        cosine = (out * expected).sum(1) / (np.linalg.norm(out, axis=1)
                                            * np.linalg.norm(expected, axis=1))
        floor = 0.9999 if precision == "fp32" else 0.98
        assert cosine.min() > floor, f"{name} {precision}: cosine {cosine.min()}"
        if precision == "fp32":
            np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-4)
        assert info["name"] == name
