"""The Transform contract: an ordered step from one ModelArtifact to the next.

Stages order a pipeline: ARCHITECTURE (distillation into a smaller student) < WEIGHTS
(pruning) < QUANTIZATION (quantization-aware training) < RUNTIME (precision for the
backend's own toolchain). So `distill+prune+qat` and `prune+int8` are valid, and a step a
backend cannot run makes the run a `skipped` record with the reason.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, ClassVar

from optbench.artifact import ModelArtifact
from optbench.errors import Availability


class Stage(IntEnum):
    ARCHITECTURE = 0
    WEIGHTS = 1
    QUANTIZATION = 2
    RUNTIME = 3


@dataclass(frozen=True)
class TransformConfig:
    """Options every transform accepts; subclasses add their own typed fields."""


@dataclass
class TransformContext:
    """What a transform may use.

    Attributes:
        backend: the target backend class (for `supports`).
        device: where the run executes; training runs there too.
        workload: data (training split, calibration) and the quality metric.
        cache_dir: root of the cache; trained artifacts are kept under `transforms/`.
        card: the model card, when the model has one (students are built from it).
        meters: makes the meters that meter training, as the run's own are chosen.
    """

    backend: type
    device: str
    workload: Any
    cache_dir: Path
    card: Any = None
    meters: Callable[[], list[Any]] = field(default=lambda: [])


class Transform(ABC):
    name: ClassVar[str] = "base"
    stage: ClassVar[Stage] = Stage.RUNTIME
    Config: ClassVar[type] = TransformConfig

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def supports(self, backend: type, device: str, artifact: ModelArtifact) -> Availability:
        """Whether `backend` on `device` can run what this step produces."""
        return Availability.yes()

    @abstractmethod
    def apply(self, artifact: ModelArtifact, ctx: TransformContext) -> ModelArtifact:
        """Return the transformed artifact (never mutate the input)."""
