"""Classic-ML models: the numba kernels against the libraries' own predict_proba on random
inputs (argmax exactly, probabilities closely), the backends' describe and refusals, and
a card fitted under meters with its training record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("numba")

from optbench.backends import BACKENDS  # noqa: E402
from optbench.backends.base import LoadContext  # noqa: E402
from optbench.errors import Unavailable  # noqa: E402
from optbench.models.classic import make_estimator  # noqa: E402

RNG = np.random.default_rng(0)


def data(classes, n=300, d=12):
    x = RNG.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] * 2 + x[:, 1] - x[:, 2] * x[:, 3] > 0).astype(int) if classes == 2 else (
        np.digitize(x[:, 0] + 0.5 * x[:, 1], np.linspace(-1.5, 1.5, classes - 1)))
    return x, y


def kernel_outputs(model, x):
    from optbench.backends.numba_kernels import compile_model

    return compile_model(model)(x)


ESTIMATORS = [
    ("logreg", {"max_iter": 500}),
    ("forest", {"n_estimators": 20, "max_depth": 8}),
    ("gbt", {"n_estimators": 15, "num_leaves": 7}),
    ("knn", {"n_neighbors": 5, "algorithm": "brute"}),
]


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("family,params", ESTIMATORS, ids=[e[0] for e in ESTIMATORS])
def test_kernels_agree_with_the_library_on_random_inputs(family, params, classes):
    if family == "gbt":
        pytest.importorskip("lightgbm")
    x, y = data(classes)
    model = make_estimator(family, params).fit(x, y)
    test = RNG.normal(size=(200, x.shape[1])).astype(np.float32)
    ours, theirs = kernel_outputs(model, test), model.predict_proba(test)
    assert ours.shape == theirs.shape == (200, classes)
    assert (ours.argmax(1) == theirs.argmax(1)).all()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_lightgbm_missing_values_take_the_default_branch_as_lightgbm_does():
    pytest.importorskip("lightgbm")
    x, y = data(3)
    x[RNG.random(x.shape) < 0.15] = np.nan  # NaN missing type
    x[RNG.random(x.shape) < 0.15] = 0.0
    model = make_estimator("gbt", {"n_estimators": 15, "num_leaves": 7}).fit(x, y)
    test = RNG.normal(size=(300, x.shape[1])).astype(np.float32)
    test[RNG.random(test.shape) < 0.2] = np.nan
    test[RNG.random(test.shape) < 0.2] = 0.0
    np.testing.assert_allclose(kernel_outputs(model, test), model.predict_proba(test),
                               atol=1e-9)


def test_a_model_without_a_kernel_is_unavailable_with_the_reason():
    from sklearn.svm import SVC

    from optbench.backends.numba_kernels import compile_model

    x, y = data(2)
    with pytest.raises(Unavailable, match="no numba kernel for SVC"):
        compile_model(SVC().fit(x, y))
    weighted = make_estimator("knn", {"weights": "distance"}).fit(x, y)
    with pytest.raises(Unavailable, match="uniform-weight Euclidean"):
        compile_model(weighted)


def test_backends_refuse_other_formats_and_say_what_they_accept():
    for name in ("sklearn", "numba"):
        cls = BACKENDS.get(name)
        assert cls.availability()
        refusal = cls.supports("torch", "fp32", "cpu")
        assert not refusal and "accepts: sklearn" in refusal.reason
        assert not cls.supports("sklearn", "int8", "cpu")
        assert not cls.device_support("cuda")
    torch = BACKENDS.get("torch").supports("sklearn", "fp32", "cpu")
    assert not torch and "cannot load a sklearn model" in torch.reason
    assert BACKENDS.get("ort").supports("sklearn", "fp32", "cpu")  # through skl2onnx


def test_the_onnx_form_takes_images_and_gives_probabilities_only(tmp_path):
    pytest.importorskip("skl2onnx")
    import dataclasses

    import onnxruntime as ort

    from optbench.artifact import ModelArtifact
    from optbench.backends.classic_onnx import classic_onnx_file

    x, y = data(3, d=16)
    model = make_estimator("forest", {"n_estimators": 5}).fit(x, y)
    artifact = ModelArtifact("f", "sklearn", (1, 4, 4), 3, module=model, digest="f1")
    path = classic_onnx_file(artifact, tmp_path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    images = RNG.normal(size=(7, 1, 4, 4)).astype(np.float32)
    out = session.run(None, {session.get_inputs()[0].name: images})[0]
    np.testing.assert_allclose(out, model.predict_proba(images.reshape(7, -1)), atol=1e-6)
    with pytest.raises(Unavailable, match="fp32 only"):
        classic_onnx_file(dataclasses.replace(artifact, precision="int8"), tmp_path)


def test_availability_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba" else real(name, *a))
    why = BACKENDS.get("numba").availability()
    assert not why and "pip install 'optbench[classic]'" in why.reason


def test_a_card_is_fitted_under_the_meters_once_then_cached(tmp_path):
    from optbench.meters.base import MeterContext
    from optbench.meters.select import select_meters
    from optbench.models import build_model
    from optbench.transforms.training import metered

    def meters():
        return select_meters(("auto",), MeterContext(device="cpu"), True)

    first = build_model("mnist-forest", None, tmp_path, trainer=metered(meters))
    (record,) = first.info["training"]
    assert record["transform"] == "fit forest" and not record["cached"]
    assert record["energy_j"] and record["energy_method"] != "unavailable"
    assert record["seconds"] > 0 and first.format == "sklearn"
    assert first.info["trees"] == 100 and first.reference_backend == "sklearn"
    again = build_model("mnist-forest", None, tmp_path, trainer=metered(meters))
    assert again.info["training"][0]["cached"] and again.digest == first.digest
    assert again.info["training"][0]["energy_j"] == record["energy_j"]  # what it cost to make

    ctx = LoadContext(Path(tmp_path) / "backends", 4)
    numba = BACKENDS.get("numba")(None, "cpu")
    numba.load(again, ctx)
    described = numba.describe()
    assert described["kernel"] == "forest" and described["model_bytes"] > 0
    assert described["version"].startswith("numba ")
    sk = BACKENDS.get("sklearn")(None, "cpu")
    sk.load(again, ctx)
    assert sk.describe()["estimator"] == "RandomForestClassifier"


@pytest.mark.parametrize("family,classes", [("forest", 3), ("gbt", 3), ("gbt", 2)])
def test_treelite_compiles_tree_ensembles_that_agree_with_the_library(family, classes,
                                                                      tmp_path):
    pytest.importorskip("tl2cgen")
    if family == "gbt":
        pytest.importorskip("lightgbm")
    from optbench.artifact import ModelArtifact

    x, y = data(classes, d=16)
    params = {"n_estimators": 8, "max_depth": 5} if family == "forest" else {
        "n_estimators": 8, "num_leaves": 7}
    model = make_estimator(family, params).fit(x, y)
    artifact = ModelArtifact("t", "sklearn", (1, 4, 4), classes, module=model,
                             digest=f"tl-{family}-{classes}")
    backend = BACKENDS.get("treelite")(None, "cpu")
    backend.load(artifact, LoadContext(tmp_path, 4))
    images = RNG.normal(size=(50, 1, 4, 4)).astype(np.float32)
    out = backend.to_numpy(backend.infer(backend.prepare(images)))
    theirs = model.predict_proba(images.reshape(50, -1))
    assert out.shape == theirs.shape and (out.argmax(1) == theirs.argmax(1)).all()
    np.testing.assert_allclose(out, theirs, atol=1e-5)
    described = backend.describe()
    assert described["compile_s"] is not None and described["model_bytes"] > 0
    again = BACKENDS.get("treelite")(None, "cpu")
    again.load(artifact, LoadContext(tmp_path, 4))
    assert again.describe()["compile_s"] is None  # the cached library


def test_treelite_refuses_what_is_not_a_tree_ensemble_and_needs_a_compiler(monkeypatch,
                                                                           tmp_path):
    pytest.importorskip("tl2cgen")
    from optbench.artifact import ModelArtifact
    from optbench.backends import treelite_backend

    x, y = data(2)
    linear = ModelArtifact("l", "sklearn", (12,), 2, digest="l1",
                           module=make_estimator("logreg", {}).fit(x, y))
    with pytest.raises(Unavailable, match="treelite compiles tree ensembles; "
                                          "LogisticRegression is not one"):
        BACKENDS.get("treelite")(None, "cpu").load(linear, LoadContext(tmp_path, 1))
    monkeypatch.setattr(treelite_backend.shutil, "which", lambda name: None)
    why = BACKENDS.get("treelite").availability()
    assert not why and "needs a C compiler" in why.reason


class DigitsWorkload:
    """What refit reads of a workload: its training split (small random digits)."""

    dataset = "random"

    def __init__(self, classes=3):
        x, y = data(classes, n=400, d=16)
        self.split = (x.reshape(-1, 1, 4, 4), y)

    def train_split(self):
        return self.split


def refit(family, params, budget_j, tmp_path, every=5):
    from optbench.artifact import ModelArtifact
    from optbench.meters.base import MeterContext
    from optbench.meters.select import select_meters
    from optbench.transforms import TRANSFORMS
    from optbench.transforms.base import TransformContext

    workload = DigitsWorkload()
    x, y = workload.split
    base = ModelArtifact("c", "sklearn", (1, 4, 4), 3, digest=f"{family}-base",
                         module=make_estimator(family, params).fit(x.reshape(len(x), -1), y),
                         info={"family": family, "training": [{"transform": "fit"}]})
    transform = TRANSFORMS.get("refit")(TRANSFORMS.get("refit").Config(
        energy_budget_j=budget_j, check_every=every))
    ctx = TransformContext(BACKENDS.get("numba"), "cpu", workload, tmp_path,
                           meters=lambda: select_meters(("auto",), MeterContext("cpu"), True))
    assert transform.supports(BACKENDS.get("numba"), "cpu", base)
    return transform.apply(base, ctx)


@pytest.mark.parametrize("family,params,unit", [
    ("forest", {"n_estimators": 40, "max_depth": 6}, "trees"),
    ("gbt", {"n_estimators": 40, "num_leaves": 7}, "rounds"),
    ("logreg", {"max_iter": 200, "C": 1e4}, "iterations")])
def test_a_budget_stops_a_classic_fit_and_the_record_says_so(family, params, unit, tmp_path):
    if family == "gbt":
        pytest.importorskip("lightgbm")
    whole = refit(family, params, None, tmp_path / "whole")
    (record,) = whole.info["training"]  # the re-fit's alone: it replaces the card's fit
    assert not record["budget_exhausted"] and record["energy_j"] > 0
    stopped = refit(family, params, 1e-9, tmp_path / "stopped")
    (cut,) = stopped.info["training"]
    # stopped at the first reading of the meters above the budget: the estimate meter's CPU
    # time may read 0 for the first few milliseconds, so not always after the first chunk
    done = cut["steps"]
    assert cut["budget_exhausted"] and cut["budget_j"] == 1e-9
    assert cut["notes"] == [f"energy budget 1e-09 J spent after {done} {unit}"]
    assert done % 5 == 0 and done < record["steps"] and cut["epochs_completed"] < 1
    if family == "forest":
        assert len(stopped.module.estimators_) == done and len(whole.module.estimators_) == 40
    if family == "gbt":
        assert stopped.module.booster_.current_iteration() == done
    assert "refit(budget=1e-09" in stopped.lineage[-1]
    images = RNG.normal(size=(20, 1, 4, 4)).astype(np.float32)
    out = kernel_outputs(stopped.module, images.reshape(20, -1))  # runs as any classic model
    assert (out.argmax(1) == stopped.module.predict_proba(images.reshape(20, -1)).argmax(1)).all()


def test_refit_takes_classic_models_and_float_torch_ones():
    from optbench.artifact import ModelArtifact
    from optbench.transforms import TRANSFORMS

    refit = TRANSFORMS.get("refit")()
    torch_model = ModelArtifact("cnn", "torch", (1, 28, 28), 10)
    assert refit.supports(BACKENDS.get("torch"), "cpu", torch_model)
    quantized = ModelArtifact("cnn", "torch", (1, 28, 28), 10, precision="int8",
                              quantization={"scheme": "static"})
    why = refit.supports(BACKENDS.get("torch"), "cpu", quantized)
    assert not why and "float torch model" in why.reason


class DigitsTrain:
    """The first 256 of scikit-learn's 8x8 digits as a training split."""

    dataset = "digits"

    def train_split(self):
        from optbench.workloads.datasets import load_digits

        split = load_digits()
        return split.train_x[:256], split.train_y[:256]


def test_a_budget_stops_a_cnn_trained_from_scratch(tmp_path):
    pytest.importorskip("torch")
    from optbench.meters.base import MeterContext
    from optbench.meters.select import select_meters
    from optbench.models import build_model, resolve_model
    from optbench.transforms import TRANSFORMS
    from optbench.transforms.base import TransformContext

    card = resolve_model("digits-cnn").card
    base = build_model("digits-cnn", None, tmp_path)
    ctx = TransformContext(BACKENDS.get("torch"), "cpu", DigitsTrain(), tmp_path, card=card,
                           meters=lambda: select_meters(("auto",), MeterContext("cpu"), True))

    def refit(budget_j):
        config = TRANSFORMS.get("refit").Config(energy_budget_j=budget_j, check_every=1,
                                                epochs=20)
        return TRANSFORMS.get("refit")(config).apply(base, ctx)

    whole, stopped = refit(None), refit(1e-9)
    (full,), (cut,) = whole.info["training"], stopped.info["training"]
    assert full["steps"] == 80 and not full["budget_exhausted"] and full["energy_j"] > 0
    assert cut["budget_exhausted"] and 1 <= cut["steps"] < 80
    assert cut["notes"] == [f"energy budget 1e-09 J spent after {cut['steps']} steps"]
    assert "refit(budget=1e-09" in stopped.lineage[-1] and stopped.weights_trained
    x = DigitsTrain().train_split()[0][:4]
    import torch

    with torch.no_grad():  # a fresh network of the card's shape, not the base's weights
        assert stopped.module(torch.from_numpy(x)).shape == (4, 10)
        assert not torch.equal(stopped.module(torch.from_numpy(x)),
                               base.module(torch.from_numpy(x)))


def test_a_fit_made_outside_a_run_is_made_again_under_the_meters(tmp_path):
    from optbench.meters.base import MeterContext
    from optbench.meters.select import select_meters
    from optbench.models import build_model
    from optbench.transforms.training import metered

    outside = build_model("mnist-knn", None, tmp_path)  # e.g. a benchmark script
    assert outside.info["training"][0]["energy_method"] == "unavailable"
    inside = build_model("mnist-knn", None, tmp_path, trainer=metered(
        lambda: select_meters(("auto",), MeterContext(device="cpu"), True)))
    record = inside.info["training"][0]
    assert record["energy_method"] != "unavailable" and not record["cached"]
