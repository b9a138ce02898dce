"""scikit-learn's (or LightGBM's) own `predict_proba` on a fitted classic model: the honest
baseline every other runtime of a classic model is compared with, and its fidelity
reference (optbench/models/classic.py builds the models)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

from optbench.artifact import ModelArtifact
from optbench.backends.base import Availability, BackendConfig, LoadContext, module_availability
from optbench.backends.classic_base import ClassicBackend
from optbench.models.classic import library_version


@dataclass(frozen=True)
class SklearnConfig(BackendConfig):
    pass


class SklearnBackend(ClassicBackend):
    name = "sklearn"
    Config = SklearnConfig

    @classmethod
    def availability(cls) -> Availability:
        return module_availability("sklearn", extra="classic")

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        self.model = artifact.module
        self.family = artifact.info.get("family", "?")
        self.model_bytes = len(pickle.dumps(self.model))

    def infer(self, inputs: Any) -> Any:
        return self.model.predict_proba(inputs)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": library_version(self.family),
                "estimator": type(self.model).__name__, "path": "predict_proba",
                "model_bytes": self.model_bytes}
