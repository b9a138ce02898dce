"""What the ONNX-consuming backends (ort, trt, openvino for Q/DQ models) share: the torch ->
ONNX export, cached by digest, and static int8 Q/DQ quantization of an ONNX file."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from optbench.artifact import CLASSIC, ModelArtifact
from optbench.cache import atomic_path
from optbench.models.torchnet import eval_mode

log = logging.getLogger(__name__)
INPUT_NAME = "input"
OPSET = 18


def onnx_file(artifact: ModelArtifact, cache_dir: Path, dtype: str = "fp32") -> Path:
    """The artifact as an ONNX file with a dynamic batch axis (exported once, then cached).

    `dtype` is the precision of the graph's input and weights ("fp16" for a module already
    cast to half precision, as TensorRT 11's strongly typed networks need).
    """
    if artifact.format == "onnx":
        assert artifact.path is not None
        return Path(artifact.path)
    if artifact.format == CLASSIC:
        from optbench.backends.classic_onnx import classic_onnx_file

        return classic_onnx_file(artifact, cache_dir)
    suffix = "" if dtype == "fp32" else f"-{dtype}"
    path = cache_dir / "onnx" / f"{artifact.digest}{suffix}.onnx"
    if path.is_file():
        return path
    import torch

    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    example = torch.zeros((2, *artifact.input_shape), dtype=torch_dtype)
    batch = torch.export.Dim("batch", min=1, max=4096)
    log.info("exporting %s to ONNX (opset %d)", artifact.name, OPSET)
    # atomic: a crash mid-export never leaves a half file in the cache
    with atomic_path(path) as tmp, torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            eval_mode(artifact.module), (example,), str(tmp), dynamo=True,
            input_names=[INPUT_NAME], output_names=["output"],
            dynamic_shapes=({0: batch},), opset_version=OPSET, external_data=False,
        )
    return path


def onnx_input_name(path: Path) -> str:
    """The model's first graph input that is not an initializer: a user's ONNX file names
    it as it likes (only optbench's own exports call it `input`)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)


def quantize_qdq_int8(
    src: Path, dst: Path, input_name: str, calibration: Sequence[np.ndarray],
    per_channel: bool, method: str, for_tensorrt: bool = False,
) -> Path:
    """Static int8 QDQ quantization of an ONNX file (the pure work of `--int8` for ort, and
    of trt's explicit int8).

    `for_tensorrt`: what TensorRT takes (its own builder, or ORT's TensorRT provider):
    signed int8 activations with zero point 0, and biases left in float, since TensorRT has
    no INT32 DequantizeLinear (ORT's default, QuantizeBias, would quantize them to int32).
    Otherwise uint8 activations, ORT's fast path on x86 CPUs, with int32 biases.
    """
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

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    with atomic_path(dst) as tmp:
        pre = tmp.with_name(f"{tmp.stem}.pre.onnx")  # shape-inferred, optimized input
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8 if for_tensorrt else QuantType.QUInt8,
                weight_type=QuantType.QInt8, per_channel=per_channel,
                calibrate_method=methods[method],
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                               "QuantizeBias": False} if for_tensorrt else {},
            )
        finally:
            pre.unlink(missing_ok=True)
    return dst

