"""The Transform contract: an ordered step from one ModelArtifact to the next.

Stages order a pipeline: TRAIN (QAT, distillation) < WEIGHTS (pruning) < RUNTIME
(precision, batching). A step a backend cannot run makes the run a `skipped` record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, ClassVar

from optbench.artifact import ModelArtifact
from optbench.backends.base import Availability


class Stage(IntEnum):
    TRAIN = 0
    WEIGHTS = 1
    RUNTIME = 2


@dataclass(frozen=True)
class TransformConfig:
    """Options every transform accepts; subclasses add their own typed fields."""


@dataclass
class TransformContext:
    """What a transform may use: the target backend class, device, workload and cache."""

    backend: type
    device: str
    workload: Any
    cache_dir: Path


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
