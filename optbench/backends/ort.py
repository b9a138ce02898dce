"""ONNX Runtime (CPU execution provider); int8 through `quantize_static` in QDQ format.

int8 follows ORT's documented CPU recipe: `quant_pre_process` (shape inference and graph
optimization), then static QDQ with uint8 activations and int8 per-channel weights,
calibrated on the workload's calibration split. Dynamic quantization is not used for
CNNs: on this class of CPU it is slower than fp32 (platform notes: 188 vs 40 ms).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.backends.base import (
    Availability,
    Backend,
    BackendConfig,
    LoadContext,
    module_availability,
)
from optbench.backends.onnx_export import onnx_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrtConfig(BackendConfig):
    threads: int | None = None
    graph_optimization: Literal["all", "extended", "basic", "disabled"] = "all"
    per_channel: bool = True
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"


def quantize_qdq_int8(
    src: Path, dst: Path, input_name: str, calibration: Sequence[np.ndarray],
    per_channel: bool, method: str,
) -> Path:
    """Static int8 QDQ quantization of an ONNX file (the pure work of `--int8` for ort)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items: Iterator[np.ndarray] = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {input_name: item}

    dst.parent.mkdir(parents=True, exist_ok=True)
    pre = dst.with_suffix(f".pre{os.getpid()}.onnx")
    tmp = dst.with_suffix(f".tmp{os.getpid()}.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    quantize_static(
        str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        per_channel=per_channel, calibrate_method=methods[method],
    )
    pre.unlink(missing_ok=True)
    tmp.replace(dst)
    return dst


class OrtBackend(Backend):
    name = "ort"
    Config = OrtConfig
    formats = ("torch", "onnx")
    precisions = {"cpu": ("fp32", "int8")}

    @classmethod
    def availability(cls) -> Availability:
        return module_availability("onnxruntime", "onnx", extra="ort")

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        import onnxruntime as ort

        path = onnx_file(artifact, ctx.cache_dir)
        input_name = self._input_name(path)
        if artifact.precision == "int8":
            cfg = self.config
            qpath = ctx.cache_dir / "onnx" / (
                f"{artifact.digest}-int8-{cfg.calibration_method}"
                f"-{'pc' if cfg.per_channel else 'pt'}-n{len(ctx.calibration)}.onnx"
            )
            if not qpath.is_file():
                log.info("quantizing %s with ORT quantize_static (QDQ)", artifact.name)
                quantize_qdq_int8(path, qpath, input_name, ctx.calibration,
                                  cfg.per_channel, cfg.calibration_method)
            path = qpath
        options = ort.SessionOptions()
        self.threads = self.config.threads or os.cpu_count() or 1
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        options.graph_optimization_level = levels[self.config.graph_optimization]
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.model_path = path
        self.precision = artifact.precision
        self.infer(self.prepare(np.zeros((ctx.batch_size, *artifact.input_shape), np.float32)))

    @staticmethod
    def _input_name(path: Path) -> str:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        initializers = {init.name for init in model.graph.initializer}
        return next(i.name for i in model.graph.input if i.name not in initializers)

    def prepare(self, batch: np.ndarray) -> Any:
        return {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    def infer(self, inputs: Any) -> Any:
        return self.session.run(None, inputs)[0]

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {"name": self.name, "runtime": f"onnxruntime {ort.__version__}",
                "providers": self.session.get_providers(), "threads": self.threads,
                "precision": self.precision, "model_file": self.model_path.name,
                "path": "quantize_static QDQ u8/s8" if self.precision == "int8" else "fp32"}
