"""ModelArtifact: what models and transforms produce and backends load."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

# Numeric precisions a run can ask for. "fp32" is the reference every other one is judged by.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")

# The format of a Hugging Face causal language model (a directory at `path`): backends turn
# it into a text generator through their `lm_loader`, every other format through `load`.
HF_CAUSAL_LM = "hf-causal-lm"
# A fitted classic-ML estimator with scikit-learn's API in `module` (models/classic.py).
CLASSIC = "sklearn"


@dataclass(frozen=True)
class ModelArtifact:
    """A model at one point of its transform pipeline.

    Attributes:
        name: model name (the card name, or the file's stem for bring-your-own models).
        format: "torch" (an nn.Module in `module`), "onnx" (a file at `path`),
            HF_CAUSAL_LM (a Hugging Face language model directory at `path`) or "numpy"
            (test models: a list of weight matrices in `module`).
        input_shape: shape of one sample, without the batch dimension.
        input_dtype: numpy dtype name of the input.
        num_outputs: size of the output vector per sample (classes for classifiers).
        module: the in-memory model, when the format has one.
        path: the model file, when the format has one.
        precision: numeric precision the backend is asked to run at.
        lineage: transform steps applied so far, in order.
        weights: where the weights came from ("trained here on ...", a file, "random init").
        weights_trained: False for random weights: quality is then fidelity to fp32, not accuracy.
        digest: content hash of the weights plus lineage; keys every cache.
        reference_backend: the backend whose fp32 output is the fidelity reference.
        quantization: "" for a float model; "qat-qdq" when quantization-aware training has
            already quantized it (Q/DQ nodes with learned scales): backends run it as is.
        mean, std: per-channel input normalization the model was trained with.
        info: facts about the artifact (parameters, size, calibration) recorded on the run.
    """

    name: str
    format: str
    input_shape: tuple[int, ...]
    num_outputs: int
    input_dtype: str = "float32"
    module: Any = field(default=None, compare=False, repr=False)
    path: str | None = None
    precision: str = "fp32"
    lineage: tuple[str, ...] = ()
    weights: str = ""
    weights_trained: bool = True
    digest: str = ""
    reference_backend: str = "torch"
    quantization: str = ""
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def derive(self, step: str, **changes: Any) -> ModelArtifact:
        """A new artifact one transform step further, with a digest that reflects the step."""
        digest = hashlib.sha256(f"{self.digest}|{step}".encode()).hexdigest()[:20]
        return replace(self, lineage=(*self.lineage, step), digest=digest, **changes)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description stored with every run."""
        return {
            "name": self.name,
            "format": self.format,
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype,
            "num_outputs": self.num_outputs,
            "precision": self.precision,
            "lineage": list(self.lineage),
            "weights": self.weights,
            "weights_trained": self.weights_trained,
            "digest": self.digest,
            "reference_backend": self.reference_backend,
            "quantization": self.quantization,
            **self.info,
        }
