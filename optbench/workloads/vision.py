"""Image classification: top-1/top-5 on labelled data and fidelity to the fp32 reference."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from optbench.errors import RecipeError, UsageError, closest
from optbench.results.schema import Metric
from optbench.workloads.base import Quality, Workload
from optbench.workloads.datasets import (
    DIGITS_TEST_DIGITS,
    MNIST_TEST_DIGITS,
    Split,
    labelled,
    load_imagefolder,
    synthetic,
)

DATASETS = ("mnist", "digits", "synthetic", "imagefolder:<path>")
# the bundled labelled datasets: their image shape and held-out test size
BUNDLED = {"mnist": ((1, 28, 28), MNIST_TEST_DIGITS), "digits": ((1, 8, 8), DIGITS_TEST_DIGITS)}


class VisionClassification(Workload):
    """Datasets: `mnist` (real digits), `digits` (scikit-learn's 8x8 digits),
    `imagefolder:<path>` (e.g. ImageNet val), `synthetic`.

    Quality: with labels and trained weights the headline is top-1 accuracy; otherwise it
    is top-1 agreement with the fp32 reference model on the same inputs, which is what a
    precision change can be judged by when accuracy cannot be measured.
    """

    name = "vision"
    sample_unit = "image"

    @classmethod
    def validate_dataset(cls, dataset: str, path: str) -> None:
        if dataset.startswith("imagefolder:"):
            root = Path(dataset.partition(":")[2]).expanduser()
            if not root.is_dir():
                raise RecipeError(path, f"imagefolder path is not a directory: {root}")
            return
        if dataset not in (*BUNDLED, "synthetic"):
            raise RecipeError(
                path, f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}",
                closest(dataset, (*BUNDLED, "synthetic", "imagefolder:")),
            )

    @classmethod
    def eval_limit(cls, dataset: str) -> int | None:
        return BUNDLED[dataset][1] if dataset in BUNDLED else None

    @property
    def dataset(self) -> str:
        return self.spec.dataset or "synthetic"

    @cached_property
    def split(self) -> Split:
        shape = tuple(self.artifact.input_shape)
        if self.dataset in BUNDLED:
            provided = BUNDLED[self.dataset][0]
            if shape != provided:
                raise UsageError(f"dataset {self.dataset} provides "
                                 f"{'x'.join(map(str, provided))} digits; model "
                                 f"{self.artifact.name} takes {'x'.join(map(str, shape))}")
            split = labelled(self.dataset, self.cache, seed=self.spec.seed)
            n = min(self.eval_cap or len(split.test_x), len(split.test_x))
            # Every (test size / n)-th test digit keeps the classes balanced under a cap.
            idx = np.linspace(0, len(split.test_x) - 1, n).round().astype(int)
            return Split(split.train_x, split.train_y, split.test_x[idx], split.test_y[idx],
                         split.source + (f", evaluated on {n}" if n < len(split.test_x) else ""))
        if self.dataset.startswith("imagefolder:"):
            root = Path(self.dataset.partition(":")[2]).expanduser()
            return load_imagefolder(root, shape, self.artifact.mean, self.artifact.std,
                                    self.eval_cap, self.spec.calibration_samples, self.spec.seed,
                                    self.cache, train=self.spec.train_samples or 0)
        n_eval = self.eval_cap or 256
        return Split(
            synthetic(shape, self.spec.calibration_samples, self.spec.seed + 1), None,
            synthetic(shape, n_eval, self.spec.seed), None,
            f"synthetic inputs (seeded smooth random fields, seed {self.spec.seed}), no labels",
        )

    def eval_inputs(self) -> np.ndarray:
        return self.split.test_x

    def calibration_inputs(self) -> list[np.ndarray]:
        x = self.split.train_x
        n = min(self.spec.calibration_samples, len(x))
        idx = np.random.default_rng(self.spec.seed).permutation(len(x))[:n]
        return [x[i : i + 1] for i in np.sort(idx)]

    def train_split(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.split.train_y is None:
            return None
        x, y = self.split.train_x, self.split.train_y
        n = self.spec.train_samples
        if n is not None and n < len(x):
            idx = np.sort(np.random.default_rng(self.spec.seed).permutation(len(x))[:n])
            x, y = x[idx], y[idx]
        return x, y

    def quality(self, outputs: np.ndarray, reference: np.ndarray | None) -> Quality:
        labels = self.split.test_y
        return classification_quality(outputs, labels, reference, self.artifact.weights_trained)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "dataset": self.dataset,
            "source": self.split.source,
            "eval_samples": int(len(self.split.test_x)),
            "calibration_samples": len(self.calibration_inputs()),
        }


def classification_quality(
    outputs: np.ndarray, labels: np.ndarray | None, reference: np.ndarray | None, trained: bool
) -> Quality:
    """Accuracy against labels and agreement with the reference, as fractions."""
    metrics: list[Metric] = []
    outcomes: dict[str, np.ndarray] = {}
    top1 = outputs.argmax(axis=1)
    if labels is not None:
        outcomes["top1"] = (top1 == labels).astype(np.uint8)
        metrics.append(Metric("top1", float(outcomes["top1"].mean()), "fraction"))
        if outputs.shape[1] >= 5:
            top5 = np.argpartition(-outputs, 4, axis=1)[:, :5]
            metrics.append(Metric("top5", float((top5 == labels[:, None]).any(1).mean()),
                                  "fraction"))
    if reference is not None:
        ref_top1 = reference.argmax(axis=1)
        outcomes["top1_agreement"] = (top1 == ref_top1).astype(np.uint8)
        metrics.append(Metric("top1_agreement", float(outcomes["top1_agreement"].mean()),
                              "fraction"))
        num = (outputs * reference).sum(1)
        den = np.linalg.norm(outputs, axis=1) * np.linalg.norm(reference, axis=1)
        cosine = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        metrics.append(Metric("logit_cosine", float(cosine.mean()), "fraction"))
        # How many classes the reference predicts: agreement over one class means little.
        metrics.append(Metric("reference_distinct_top1", float(len(np.unique(ref_top1))),
                              "classes"))
    primary = "top1" if labels is not None and trained else "top1_agreement"
    return Quality(tuple(metrics), primary, True, outcomes)
