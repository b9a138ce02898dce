"""Pruning: unstructured magnitude (zeros in dense weights) or structured (channels removed,
the network really shrinks), each with optional fine-tuning on the training split.

Unstructured sparsity leaves every dense kernel the same size: the CPU runtimes here do
not skip zeros, so expect no speed-up from it (the report shows the measured latency, and
the artifact records MACs and compressed size, which do and do not change respectively).
Structured pruning uses Torch-Pruning's dependency graph (residual connections included)
to remove the lowest-L1 channels; the classifier's outputs are never pruned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from optbench.artifact import ModelArtifact
from optbench.errors import Availability, Unavailable
from optbench.transforms.base import Stage, Transform, TransformConfig, TransformContext
from optbench.transforms.training import (
    MeteredSession,
    TrainingRecord,
    facts,
    float_torch_support,
    load_program,
    save_program,
    train,
    train_once,
    training_split,
)


@dataclass(frozen=True)
class PruneConfig(TransformConfig):
    sparsity: float = 0.5
    structured: bool = False
    finetune_epochs: float = 1.0
    lr: float = 5e-4
    batch_size: int = 64
    energy_budget_j: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.sparsity < 1.0:
            raise ValueError(f"sparsity must be between 0 and 1, got {self.sparsity}")


def classifier(module: Any) -> Any:
    """The last Linear layer: its outputs are the classes and are never pruned."""
    import torch

    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    return linears[-1] if linears else None


def prune_unstructured(module: Any, sparsity: float) -> list[tuple[Any, str]]:
    """L1 magnitude masks on every conv/linear weight except the classifier's."""
    import torch
    from torch.nn.utils import prune

    last = classifier(module)
    targets = [(m, "weight") for m in module.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m is not last]
    for layer, name in targets:
        prune.l1_unstructured(layer, name, amount=sparsity)
    return targets


def prune_structured(module: Any, sparsity: float, input_shape: tuple[int, ...]) -> None:
    """Remove a `sparsity` fraction of channels per layer (Torch-Pruning, L1 importance)."""
    import torch

    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise Unavailable("structured pruning needs torch-pruning: "
                          "pip install 'optbench[transforms]'") from exc
    last = classifier(module)
    pruner = tp.pruner.MagnitudePruner(
        module, torch.zeros((1, *input_shape)), importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=sparsity, ignored_layers=[last] if last is not None else [])
    pruner.step()


class Prune(Transform):
    name = "prune"
    stage = Stage.WEIGHTS
    Config = PruneConfig

    def supports(self, backend: type, device: str, artifact: ModelArtifact) -> Availability:
        return float_torch_support(backend, device, artifact, "pruning")

    def apply(self, artifact: ModelArtifact, ctx: TransformContext) -> ModelArtifact:
        cfg = self.config
        kind = "structured" if cfg.structured else "unstructured"
        derived = artifact.derive(f"prune({kind},{cfg.sparsity:g},ft={cfg.finetune_epochs:g},"
                                  f"budget={cfg.energy_budget_j})")
        stored, directory = train_once(
            ctx, derived.digest, f"prune-{kind}",
            lambda session, record, out: self._make(artifact, ctx, session, record, out))
        info = {**artifact.info, **stored["facts"], "sparsity": cfg.sparsity, "pruning": kind,
                "training": [*artifact.info.get("training", []), stored["record"]]}
        return replace(derived, module=self._load(artifact, directory), info=info)

    def _make(self, artifact: ModelArtifact, ctx: TransformContext, session: MeteredSession,
              record: TrainingRecord, out: Path) -> dict[str, Any]:
        import torch

        cfg = self.config
        module = copy.deepcopy(artifact.module)
        if cfg.structured:
            prune_structured(module, cfg.sparsity, artifact.input_shape)
        else:
            masks = prune_unstructured(module, cfg.sparsity)
        if cfg.finetune_epochs > 0:
            x, y = training_split(ctx, "fine-tuning after pruning")
            module.train()
            train(module, x, y, cross_entropy, epochs=cfg.finetune_epochs,
                  batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, session=session,
                  budget_j=cfg.energy_budget_j, record=record)
        module.eval()
        if not cfg.structured:
            for layer, name in masks:  # masks kept through fine-tuning, then baked in
                torch.nn.utils.prune.remove(layer, name)
        found = facts(module, artifact.input_shape)
        if cfg.structured:
            save_program(module, artifact.input_shape, out / "model.pt2")
        else:
            torch.save(module.state_dict(), out / "state.pt")
        return found

    def _load(self, artifact: ModelArtifact, directory: Path) -> Any:
        """Reloaded from the cache in every run, so every backend gets the same module."""
        import torch

        if self.config.structured:
            return load_program(directory / "model.pt2")
        module = copy.deepcopy(artifact.module)
        module.load_state_dict(torch.load(directory / "state.pt", weights_only=True))
        return module.eval()


def cross_entropy(module: Any, x: Any, y: Any) -> Any:
    import torch

    return torch.nn.functional.cross_entropy(module(x), y)
