"""OpenVINO (CPU); an explicit f32 baseline, int8 through NNCF post-training quantization.

On CPUs with bf16 support OpenVINO silently runs bf16 unless told otherwise, so every
compile states INFERENCE_PRECISION_HINT: f32 for fp32 and int8 (the int8 model's
non-quantized ops then stay f32), and bf16 only for the bf16 variant.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from optbench.artifact import CLASSIC, HF_CAUSAL_LM, ModelArtifact
from optbench.backends.base import (
    Availability,
    Backend,
    BackendConfig,
    LoadContext,
    file_bytes,
    module_availability,
)
from optbench.backends.lm import openvino_lm
from optbench.cache import atomic_path
from optbench.errors import Unavailable
from optbench.models.torchnet import eval_mode, is_exported

log = logging.getLogger(__name__)
HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}


@dataclass(frozen=True)
class OpenVinoConfig(BackendConfig):
    threads: int | None = None
    performance_hint: Literal["latency", "throughput"] = "latency"
    nncf_preset: Literal["performance", "mixed"] = "performance"


def save_ir(model: Any, path: Path) -> None:
    """Write an OpenVINO IR (.xml and its .bin) atomically, the .xml last, f32 weights kept:
    compress_to_fp16 defaults to True, which would make the "fp32" baseline fp16 weights."""
    import openvino as ov

    with atomic_path(path, companions=(".bin",)) as tmp:
        ov.save_model(model, str(tmp), compress_to_fp16=False)


def ir_file(artifact: ModelArtifact, cache_dir: Path) -> Path:
    """The artifact as OpenVINO IR with f32 weights (converted once, then cached)."""
    import openvino as ov

    path = cache_dir / "openvino" / f"{artifact.digest}.xml"
    if path.is_file():
        return path
    if artifact.format == "onnx":
        model = ov.convert_model(artifact.path)
    elif artifact.format == CLASSIC:
        from optbench.backends.classic_onnx import unconverted
        from optbench.backends.onnx_export import onnx_file

        source = onnx_file(artifact, cache_dir)
        try:
            model = ov.convert_model(str(source))
        except Exception as exc:  # noqa: BLE001 - OpenVINO's refusal is the run's reason
            raise Unavailable(f"OpenVINO cannot read {artifact.name}'s ONNX graph "
                              f"({unconverted(exc)})") from None
    elif artifact.quantization or is_exported(artifact.module):
        # A QAT model goes through its Q/DQ ONNX export (OpenVINO reads Q/DQ as int8); so do
        # other exported-program modules, which OpenVINO's TorchScript tracing cannot take.
        from optbench.backends.onnx_export import onnx_file

        model = ov.convert_model(str(onnx_file(artifact, cache_dir)))
    else:
        import torch

        with torch.no_grad():
            example = torch.zeros((1, *artifact.input_shape))
            model = ov.convert_model(eval_mode(artifact.module), example_input=example)
    save_ir(model, path)
    return path


def quantize_nncf_int8(
    model: Any, calibration: Sequence[np.ndarray], preset: str
) -> Any:
    """NNCF post-training int8 quantization of an OpenVINO model (the work of `--int8`)."""
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "600")
    import nncf

    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE,
               "mixed": nncf.QuantizationPreset.MIXED}
    return nncf.quantize(model, nncf.Dataset(list(calibration)),
                         subset_size=len(calibration), preset=presets[preset])


class OpenVinoBackend(Backend):
    name = "openvino"
    Config = OpenVinoConfig
    weight_only_bits = (8, 4)  # language models: the woq transform's options
    formats = ("torch", "onnx", CLASSIC, HF_CAUSAL_LM)
    lm_loader = staticmethod(openvino_lm.load)
    precisions = {"cpu": ("fp32", "bf16", "int8")}
    runs_qdq_int8 = True

    @classmethod
    def availability(cls) -> Availability:
        return module_availability("openvino", extra="openvino")

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        import openvino as ov

        core = ov.Core()
        if artifact.precision == "bf16":
            capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            if "BF16" not in capabilities:
                raise Unavailable(f"this CPU has no native bf16 in OpenVINO (capabilities: "
                                  f"{', '.join(capabilities)})")
        path = ir_file(artifact, ctx.cache_dir)
        if artifact.precision == "int8" and not artifact.quantization:
            qpath = path.with_name(f"{artifact.digest}-int8-{self.config.nncf_preset}"
                                   f"-n{len(ctx.calibration)}.xml")
            if not qpath.is_file():
                log.info("quantizing %s with NNCF", artifact.name)
                save_ir(quantize_nncf_int8(core.read_model(path), ctx.calibration,
                                           self.config.nncf_preset), qpath)
            path = qpath
        model = core.read_model(path)
        model.reshape([ctx.batch_size, *artifact.input_shape])
        self.threads = self.config.threads or os.cpu_count() or 1
        self.properties = {
            "INFERENCE_PRECISION_HINT": HINTS[artifact.precision],
            "PERFORMANCE_HINT": self.config.performance_hint.upper(),
            "INFERENCE_NUM_THREADS": self.threads,
        }
        self.compiled = core.compile_model(model, "CPU", self.properties)
        self.request = self.compiled.create_infer_request()
        self.precision = artifact.precision
        self.path = ("QAT int8 (Q/DQ)" if artifact.quantization else "NNCF PTQ int8"
                     if artifact.precision == "int8" else artifact.precision)
        self.model_path = path
        self.infer(self.prepare(np.zeros((ctx.batch_size, *artifact.input_shape), np.float32)))

    def prepare(self, batch: np.ndarray) -> Any:
        import openvino as ov

        return ov.Tensor(np.ascontiguousarray(batch, dtype=np.float32))

    def infer(self, inputs: Any) -> Any:
        self.request.set_input_tensor(inputs)
        self.request.infer()
        return self.request.get_output_tensor(0)

    def to_numpy(self, outputs: Any) -> np.ndarray:
        # The output tensor is reused by the next infer; copy it out.
        return np.array(outputs.data, dtype=np.float32, copy=True)

    def describe(self) -> dict[str, Any]:
        import openvino as ov

        effective = {k: str(self.compiled.get_property(k))
                     for k in ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT",
                               "INFERENCE_NUM_THREADS", "NUM_STREAMS")}
        return {"name": self.name, "runtime": f"openvino {ov.__version__}",
                "precision": self.precision, "model_file": self.model_path.name,
                "model_bytes": file_bytes(self.model_path, self.model_path.with_suffix(".bin")),
                "requested": self.properties, "effective": effective,
                "path": self.path}
