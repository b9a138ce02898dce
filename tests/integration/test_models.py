"""Model builders: reproducible training, torchvision-compatible ResNet-50, own ONNX files."""

import numpy as np
import pytest

from optbench.models import build_model, resolve_model


def test_mnist_cnn_training_is_reproducible(tmp_path):
    first = build_model("mnist-cnn", None, tmp_path / "a")
    second = build_model("mnist-cnn", None, tmp_path / "b")
    assert first.digest == second.digest
    assert first.info["trained"] == "now" and first.weights_trained
    cached = build_model("mnist-cnn", None, tmp_path / "a")
    assert cached.info["trained"] == "cached" and cached.digest == first.digest


def test_resnet50_has_torchvision_keys_and_loads_their_weights(tmp_path):
    torch = pytest.importorskip("torch")
    from optbench.models.resnet import resnet50

    model = resnet50()
    keys = list(model.state_dict())
    assert keys[:5] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                        "bn1.running_var"]
    assert "layer4.2.bn3.num_batches_tracked" in keys and keys[-2:] == ["fc.weight", "fc.bias"]
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's count
    try:
        import torchvision

        reference = torchvision.models.resnet50().state_dict()
        assert {k: tuple(v.shape) for k, v in reference.items()} == {
            k: tuple(v.shape) for k, v in model.state_dict().items()}
    except Exception:  # noqa: BLE001 - torchvision does not import with the CPU torch wheel
        pass
    weights = tmp_path / "resnet50-user.pth"
    torch.save(model.state_dict(), weights)
    artifact = build_model("resnet50", str(weights), tmp_path / "cache")
    assert artifact.weights_trained and str(weights) in artifact.weights


def test_random_resnet50_predictions_vary_with_the_input(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from optbench.workloads.datasets import synthetic

    # random init only when torchvision's cache has no resnet50 weights: never the host's
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    artifact = build_model("resnet50", None, tmp_path)
    assert not artifact.weights_trained and "random init" in artifact.weights
    with torch.no_grad():
        out = artifact.module(torch.from_numpy(synthetic((3, 224, 224), 32, 0))).numpy()
    # 11 distinct classes here: 5 leaves room for another CPU's numerics to move near-ties
    assert len(np.unique(out.argmax(1))) >= 5


def test_bring_your_own_onnx(tmp_path):
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(module, (torch.zeros(1, 3, 2, 2),), str(path), dynamo=True,
                      input_names=["x"], dynamic_shapes=({0: torch.export.Dim("b")},),
                      external_data=False)
    ref = resolve_model(str(path))
    assert ref.kind == "onnx"
    artifact = build_model(str(path), None, tmp_path)
    assert artifact.format == "onnx" and artifact.input_shape == (3, 2, 2)
    assert artifact.num_outputs == 3 and artifact.reference_backend == "ort"
