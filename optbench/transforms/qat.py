"""Quantization-aware training: int8 with scales learned on the training split.

torchao pt2e: the model is captured with a dynamic batch, `prepare_qat_pt2e` inserts fake
quantization per X86InductorQuantizer's QAT configuration (BatchNorm folded), a short
fine-tune learns weights and ranges together, and `convert_pt2e` yields a model with
quantize/dequantize nodes. Every backend runs that result natively: inductor lowers it
to int8 kernels (torch), and its ONNX export is a Q/DQ graph that ONNX Runtime and
OpenVINO execute as int8 without re-quantizing. (TensorRT needs symmetric activations,
which x86's QAT configuration does not produce: skipped there, with that reason.)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from optbench.artifact import ModelArtifact
from optbench.errors import Availability
from optbench.transforms.base import Stage, Transform, TransformConfig, TransformContext
from optbench.transforms.prune import cross_entropy
from optbench.transforms.training import (
    MeteredSession,
    TrainingRecord,
    load_program,
    save_program,
    train,
    train_once,
    training_split,
)


@dataclass(frozen=True)
class QatConfig(TransformConfig):
    epochs: float = 1.0
    lr: float = 1e-4
    batch_size: int = 64
    energy_budget_j: float | None = None
    seed: int = 0


def prepare_qat(module: Any, input_shape: tuple[int, ...]) -> Any:
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    batch = torch.export.Dim("batch", min=1, max=4096)
    example = torch.zeros((8, *input_shape))
    captured = torch.export.export(module.train(), (example,),
                                   dynamic_shapes=({0: batch},)).module()
    quantizer = X86InductorQuantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config(is_qat=True))
    return prepare_qat_pt2e(captured, quantizer)


def convert_qat(prepared: Any) -> Any:
    import torchao.quantization.pt2e as pt2e
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    pt2e.move_exported_model_to_eval(prepared)
    return convert_pt2e(prepared)


class Qat(Transform):
    name = "qat"
    stage = Stage.QUANTIZATION
    Config = QatConfig

    def supports(self, backend: type, device: str, artifact: ModelArtifact) -> Availability:
        if artifact.format != "torch" or artifact.precision != "fp32":
            return Availability.no("QAT starts from a float torch model")
        if not getattr(backend, "runs_qdq_int8", False):
            return Availability.no(f"{backend.name} cannot run the x86 QAT model's "
                                   "asymmetric int8 Q/DQ graph")
        return backend.supports(artifact.format, "int8", device)

    def apply(self, artifact: ModelArtifact, ctx: TransformContext) -> ModelArtifact:
        cfg = self.config
        derived = artifact.derive(
            f"qat(epochs={cfg.epochs:g},lr={cfg.lr:g},budget={cfg.energy_budget_j})")

        def make(session: MeteredSession, record: TrainingRecord, out: Path) -> dict[str, Any]:
            x, y = training_split(ctx, "quantization-aware training")
            prepared = prepare_qat(copy.deepcopy(artifact.module), artifact.input_shape)
            train(prepared, x, y, cross_entropy, epochs=cfg.epochs, batch_size=cfg.batch_size,
                  lr=cfg.lr, seed=cfg.seed, session=session, budget_j=cfg.energy_budget_j,
                  record=record)
            save_program(convert_qat(prepared), artifact.input_shape, out / "model.pt2")
            return {}

        stored, directory = train_once(ctx, derived.digest, "qat", make,
                                       data="quantization-aware training")
        info = {**artifact.info, "quantized_by": "torchao pt2e QAT (X86InductorQuantizer)",
                "training": [*artifact.info.get("training", []), stored["record"]]}
        return replace(derived, module=load_program(directory / "model.pt2"), precision="int8",
                       quantization="qat-qdq", info=info)
