"""The Workload contract: evaluation and calibration data, and how outputs are judged."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.results.schema import Metric


@dataclass(frozen=True)
class Quality:
    """A run's quality figures and which one is the headline (the Pareto axis)."""

    metrics: tuple[Metric, ...]
    primary: str
    higher_is_better: bool = True
    # per-sample outcomes by metric name (RunResult.outcomes): what uncertainty and paired
    # significance are computed from
    outcomes: dict[str, np.ndarray] = field(default_factory=dict)


class Workload(ABC):
    """Data plus a quality metric, for one model's input spec.

    Subclasses are built per run with the workload spec, the model artifact (for input
    shape and normalization), the sample cap of the protocol and the cache directory.
    """

    name: ClassVar[str] = "base"
    sample_unit: ClassVar[str] = "sample"
    generative: ClassVar[bool] = False  # text generation: prompts in, tokens out

    def __init__(self, spec: Any, artifact: ModelArtifact, eval_cap: int | None, cache: Path):
        self.spec = spec
        self.artifact = artifact
        self.eval_cap = eval_cap
        self.cache = cache

    @classmethod
    def validate_dataset(cls, dataset: str, path: str) -> None:
        """Raise RecipeError when `dataset` is not something this workload can load."""

    @classmethod
    def eval_limit(cls, dataset: str) -> int | None:
        """How many evaluation samples `dataset` holds, where that is known without loading
        it; None when it is not (a folder of files) or when samples are made on demand."""
        return None

    def check(self) -> None:
        """Raise UsageError for a spec this model cannot be judged by (before any work)."""

    @abstractmethod
    def eval_inputs(self) -> np.ndarray:
        """Evaluation inputs, shape (N, *input_shape), already preprocessed."""

    @abstractmethod
    def calibration_inputs(self) -> list[np.ndarray]:
        """Calibration inputs (each with a batch dim of 1), disjoint from evaluation data."""

    def train_split(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(inputs, labels) for training transforms, or None when the dataset has none."""
        return None

    @abstractmethod
    def quality(self, outputs: np.ndarray, reference: np.ndarray | None) -> Quality:
        """Judge `outputs` (aligned with eval_inputs) against labels and the fp32 reference."""

    def describe(self) -> dict[str, Any]:
        return {"workload": self.name, "sample_unit": self.sample_unit}
