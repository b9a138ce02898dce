"""torch -> ONNX export shared by the ONNX-consuming backends (ort, trt), cached by digest."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from optbench.artifact import ModelArtifact
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
    suffix = "" if dtype == "fp32" else f"-{dtype}"
    path = cache_dir / "onnx" / f"{artifact.digest}{suffix}.onnx"
    if path.is_file():
        return path
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    example = torch.zeros((2, *artifact.input_shape), dtype=torch_dtype)
    batch = torch.export.Dim("batch", min=1, max=4096)
    tmp = path.with_suffix(f".tmp{os.getpid()}.onnx")
    log.info("exporting %s to ONNX (opset %d)", artifact.name, OPSET)
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            eval_mode(artifact.module), (example,), str(tmp), dynamo=True,
            input_names=[INPUT_NAME], output_names=["output"],
            dynamic_shapes=({0: batch},), opset_version=OPSET, external_data=False,
        )
    tmp.replace(path)  # atomic: a crash mid-export never leaves a half file in the cache
    return path
