"""A classic model as an ONNX file, for ONNX Runtime and OpenVINO: skl2onnx for
scikit-learn estimators, onnxmltools for LightGBM, probabilities as a plain tensor (no
ZipMap), and a Reshape in front so the graph takes the images (n, 1, 28, 28) the loop
feeds every runtime. Converted once per model digest, then cached."""

from __future__ import annotations

import logging
from pathlib import Path

from optbench.artifact import ModelArtifact
from optbench.cache import atomic_path
from optbench.errors import Unavailable

log = logging.getLogger(__name__)
OPSET = 17  # the ai.onnx opset of skl2onnx graphs (with ai.onnx.ml 3)
LIGHTGBM_OPSET = 15  # the highest onnxmltools 1.16 converts LightGBM to
INPUT = "input"


def classic_onnx_file(artifact: ModelArtifact, cache_dir: Path) -> Path:
    """The converted file; Unavailable when the model is not fp32 (a classic model has no
    int8 or half-precision path here) or its converter refuses it."""
    if artifact.precision != "fp32":
        raise Unavailable(f"a classic model runs at fp32 only (asked: {artifact.precision})")
    path = cache_dir / "onnx" / f"{artifact.digest}-classic.onnx"
    if path.is_file():
        return path
    import onnx

    model = convert(artifact)
    model = images_in_probabilities_out(model, artifact.input_shape)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return path


def convert(artifact: ModelArtifact):  # -> onnx.ModelProto
    features = 1
    for d in artifact.input_shape:
        features *= int(d)
    estimator = artifact.module
    name = type(estimator).__name__
    log.info("converting %s (%s) to ONNX", artifact.name, name)
    try:
        if name == "LGBMClassifier":
            import onnxmltools
            from onnxmltools.convert.common.data_types import FloatTensorType

            return onnxmltools.convert_lightgbm(
                estimator, initial_types=[("flat", FloatTensorType([None, features]))],
                zipmap=False, target_opset=LIGHTGBM_OPSET)
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        return convert_sklearn(estimator, initial_types=[("flat", FloatTensorType(
            [None, features]))], options={id(estimator): {"zipmap": False}},
            target_opset={"": OPSET, "ai.onnx.ml": 3})
    except ImportError as exc:
        raise Unavailable(f"converting {name} to ONNX needs {exc.name}: pip install "
                          "'optbench[classic]'") from None
    except Exception as exc:  # noqa: BLE001 - a converter's refusal is this run's reason
        raise Unavailable(f"{name} does not convert to ONNX: {' '.join(str(exc).split())[:200]}"
                          ) from None


def images_in_probabilities_out(model, input_shape: tuple[int, ...]):  # ModelProto
    """`input` (n, *input_shape) -> Reshape -> the converter's `flat` input; the class
    probabilities the only output."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    outputs = [o for o in graph.output if "prob" in o.name]
    if len(outputs) != 1:
        raise Unavailable(f"the converted graph has no single probabilities output "
                          f"({', '.join(o.name for o in graph.output)})")
    del graph.output[:]
    graph.output.extend(outputs)
    flat = next(i for i in graph.input if i.name == "flat")
    graph.input.remove(flat)
    graph.input.insert(0, helper.make_tensor_value_info(
        INPUT, TensorProto.FLOAT, ["batch", *input_shape]))
    graph.initializer.append(numpy_helper.from_array(
        np.asarray([-1, int(np.prod(input_shape))], dtype=np.int64), "flat_shape"))
    graph.node.insert(0, helper.make_node("Reshape", [INPUT, "flat_shape"], ["flat"],
                                          name="flatten_images"))
    return model


def unconverted(exc: BaseException) -> str:
    """OpenVINO's refusal of a graph, in one line: the operations it has no rule for."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines()]
    wanted = [line for line in lines if "No conversion rule" in line or "conversion" in line]
    return (wanted[-1] if wanted else next((x for x in reversed(lines) if x), type(exc).__name__)
            ).removeprefix("-- ")[:300]
