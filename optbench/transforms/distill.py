"""Knowledge distillation into a smaller student, trained on the workload's training split.

Teacher: the model as it arrives. Student: the architecture of a model card's `student`
builder (the model's own card by default) at a width multiplier. Loss (Hinton et al.):
alpha * T^2 * KL(softmax(s/T) || softmax(t/T)) + (1 - alpha) * cross-entropy(s, labels).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
from optbench.errors import Availability, Unavailable
from optbench.models.torchnet import eval_mode
from optbench.transforms.base import Stage, Transform, TransformConfig, TransformContext
from optbench.transforms.training import (
    MeteredSession,
    TrainingRecord,
    facts,
    float_torch_support,
    train,
    train_once,
    training_split,
)


@dataclass(frozen=True)
class DistillConfig(TransformConfig):
    width: float = 0.5
    architecture: str | None = None
    epochs: float = 3.0
    temperature: float = 4.0
    alpha: float = 0.7
    lr: float = 2e-3
    batch_size: int = 64
    energy_budget_j: float | None = None
    seed: int = 0
    steps: int = 300  # language models: optimizer steps of 16 x 128 tokens
    check_every: int = 20  # optimizer steps between reads of the meters (with a budget)

    def __post_init__(self) -> None:
        if not 0.0 < self.width <= 1.0:
            raise ValueError(f"width must be in (0, 1], got {self.width}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


def student_builder(ctx: TransformContext, architecture: str | None) -> tuple[Any, Any]:
    """(card, builder) of the student; the builder is `module:function(card, width)`."""
    from optbench.models import resolve_model

    card = resolve_model(architecture).card if architecture else ctx.card
    if card is None or not card.student:
        raise Unavailable("distillation needs a model card with a `student` builder "
                          "(see docs/models.md); this model has none")
    module_name, _, func = card.student.partition(":")
    return card, getattr(importlib.import_module(module_name), func)


def kd_loss(teacher: Any, temperature: float, alpha: float) -> Any:
    import torch
    import torch.nn.functional as F

    def loss(student: Any, x: Any, y: Any) -> Any:
        with torch.no_grad():
            t = teacher(x)
        s = student(x)
        soft = F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1),
                        reduction="batchmean") * temperature**2
        return alpha * soft + (1 - alpha) * F.cross_entropy(s, y)

    return loss


class Distill(Transform):
    name = "distill"
    stage = Stage.ARCHITECTURE
    Config = DistillConfig

    def supports(self, backend: type, device: str, artifact: ModelArtifact) -> Availability:
        if artifact.format == HF_CAUSAL_LM:
            if artifact.quantization or artifact.precision != "fp32":
                return Availability.no("distillation needs the float teacher")
            return backend.supports(artifact.format, artifact.precision, device)
        return float_torch_support(backend, device, artifact, "distillation (the teacher)")

    def apply(self, artifact: ModelArtifact, ctx: TransformContext) -> ModelArtifact:
        import torch

        cfg = self.config
        if artifact.format == HF_CAUSAL_LM:
            from optbench.transforms.distill_lm import distill_lm

            derived = artifact.derive(
                f"distill-lm(width={cfg.width:g},steps={cfg.steps},T={cfg.temperature:g},"
                f"alpha={cfg.alpha:g},lr={cfg.lr:g},budget={cfg.energy_budget_j})")
            return distill_lm(artifact, derived, cfg, ctx)
        card, build = student_builder(ctx, cfg.architecture)
        # where the budget is read changes where training stops: in the label unless default
        every = "" if cfg.check_every == 20 else f",every={cfg.check_every}"
        derived = artifact.derive(
            f"distill(width={cfg.width:g},arch={card.name},epochs={cfg.epochs:g},"
            f"T={cfg.temperature:g},alpha={cfg.alpha:g},budget={cfg.energy_budget_j}{every})")

        def make(session: MeteredSession, record: TrainingRecord, out: Path) -> dict[str, Any]:
            x, y = training_split(ctx, "distillation")
            torch.manual_seed(cfg.seed)
            student = build(card, cfg.width).train()
            train(student, x, y, kd_loss(eval_mode(artifact.module), cfg.temperature, cfg.alpha),
                  epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed,
                  session=session, budget_j=cfg.energy_budget_j, record=record,
                  check_every=max(1, cfg.check_every))
            student.eval()
            torch.save(student.state_dict(), out / "state.pt")
            return facts(student, artifact.input_shape)

        stored, directory = train_once(ctx, derived.digest, "distill", make,
                                       data="distillation")
        student = build(card, cfg.width)
        student.load_state_dict(torch.load(directory / "state.pt", weights_only=True))
        info = {**{k: v for k, v in artifact.info.items() if k not in stored["facts"]},
                **stored["facts"], "student": f"{card.name} x{cfg.width:g}",
                "training": [*artifact.info.get("training", []), stored["record"]]}
        return replace(derived, module=student.eval(), weights_trained=True, info=info)
