"""Bring-your-own models: ONNX files and Hugging Face image classifiers."""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
from optbench.errors import UsageError

log = logging.getLogger(__name__)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ONNX_DTYPES = {1: "float32", 10: "float16", 16: "bfloat16", 11: "float64"}


def file_digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class OnnxSignature:
    """What optbench needs from an ONNX graph: one input with a static per-sample shape."""

    input_dims: tuple[int, ...]  # -1 for a dynamic dimension (allowed only for the batch)
    input_dtype: str
    num_outputs: int


def onnx_signature(path: Path) -> OnnxSignature:
    """Read and check the graph's one input and its output size (weights stay on disk).

    Raises UsageError naming the file for anything optbench cannot run: an empty or
    unparsable file, a graph without nodes, not exactly one input, a dynamic per-sample
    dimension or output size, an input that is not a float tensor."""
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise UsageError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise UsageError(f"{path}: the model file is empty (0 bytes)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise UsageError(f"{path}: not an ONNX model ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split()) or 'cannot parse'})") from None
    if model.ir_version <= 0 or not model.graph.node:
        raise UsageError(f"{path}: not an ONNX model (no IR version or no graph nodes)")
    graph_inputs = [i for i in model.graph.input
                    if i.name not in {init.name for init in model.graph.initializer}]
    if len(graph_inputs) != 1:
        raise UsageError(f"{path}: optbench runs single-input models; this one has "
                         f"{len(graph_inputs)} inputs")
    if not model.graph.output:
        raise UsageError(f"{path}: the graph has no outputs")
    tensor = graph_inputs[0].type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    out_dims = [d.dim_value if d.HasField("dim_value") else -1
                for d in model.graph.output[0].type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d <= 0 for d in dims[1:]) or not out_dims or out_dims[-1] <= 0:
        raise UsageError(f"{path}: needs a static per-sample input shape and output size "
                         f"(found input {list(dims)}, output {out_dims})")
    if tensor.elem_type not in ONNX_DTYPES:
        name = onnx.TensorProto.DataType.Name(tensor.elem_type) if tensor.elem_type in \
            onnx.TensorProto.DataType.values() else str(tensor.elem_type)
        raise UsageError(f"{path}: input '{graph_inputs[0].name}' is {name}; optbench feeds "
                         f"float tensors ({', '.join(ONNX_DTYPES.values())})")
    return OnnxSignature(dims, ONNX_DTYPES[tensor.elem_type], out_dims[-1])


def check_hf_dir(path: Path) -> None:
    """A local Hugging Face model directory that its loader can use: a config.json that is
    a JSON object, weights (*.safetensors or *.bin), and for a causal LM a tokenizer.
    Raises UsageError naming the directory."""
    import json

    config_file = path / "config.json"
    if not config_file.is_file():
        raise UsageError(f"{path}: a directory without config.json, not a Hugging Face model")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{config_file}: not readable JSON ({' '.join(str(exc).split())})") \
            from None
    if not isinstance(config, dict):
        raise UsageError(f"{config_file}: expected a JSON object")
    if not any(p.suffix in (".safetensors", ".bin") for p in path.iterdir() if p.is_file()):
        raise UsageError(f"{path}: no weights (*.safetensors or *.bin) in the directory")
    architectures = config.get("architectures") or []
    causal = any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    if causal and not any((path / name).is_file() for name in TOKENIZER_FILES[1:]):
        raise UsageError(f"{path}: no tokenizer files; save the tokenizer next to the model")


def load_onnx(path: Path) -> ModelArtifact:
    """An ONNX classifier: input shape and output size read from the graph."""
    signature = onnx_signature(path)
    dims = signature.input_dims
    extra = sorted(path.parent.glob(path.name + ".data"))
    return ModelArtifact(
        name=path.stem,
        format="onnx",
        path=str(path),
        input_shape=tuple(dims[1:]),
        input_dtype=signature.input_dtype,
        num_outputs=signature.num_outputs,
        weights=f"file {path}",
        weights_trained=True,
        digest=file_digest(path, *extra),
        reference_backend="ort",
        info={"fixed_batch": dims[0] if dims[0] > 0 else None,
              "file_bytes": path.stat().st_size + sum(p.stat().st_size for p in extra)},
    )


def load_hf_image_classifier(ref: str) -> ModelArtifact:
    """A transformers image classifier from a local directory or a reachable hub id."""
    import json

    import torch
    from transformers import AutoConfig, AutoModelForImageClassification

    from optbench.models.torchnet import module_facts, state_digest

    try:
        config = AutoConfig.from_pretrained(ref)
        model = AutoModelForImageClassification.from_pretrained(ref)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load Hugging Face image classifier '{ref}': {exc}") from exc
    size = getattr(config, "image_size", 224)
    if isinstance(size, dict):
        size = size.get("height", size.get("shortest_edge", 224))
    if isinstance(size, (list, tuple)):
        size = size[0]
    channels = getattr(config, "num_channels", 3)
    mean, std = IMAGENET_MEAN[:channels], IMAGENET_STD[:channels]
    processor = Path(ref) / "preprocessor_config.json"
    if processor.is_file():
        data = json.loads(processor.read_text())
        mean = tuple(data.get("image_mean", mean))
        std = tuple(data.get("image_std", std))

    class LogitsOnly(torch.nn.Module):
        """Plain tensor-in, logits-out, so every exporter sees a simple graph."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: Any) -> Any:
            return self.inner(pixel_values=pixel_values).logits

    module = LogitsOnly(model).eval()
    return ModelArtifact(
        name=Path(ref).name or ref,
        format="torch",
        module=module,
        input_shape=(channels, int(size), int(size)),
        num_outputs=int(config.num_labels),
        weights=f"huggingface {ref}",
        weights_trained=True,
        digest=state_digest(module, ref),
        mean=tuple(mean),
        std=tuple(std),
        info=module_facts(module),
    )


# What identifies a causal LM besides its weights (the digest covers them all).
TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer.model", "vocab.json",
                   "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "generation_config.json")
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt"]


@functools.cache
def local_hf_dir(ref: str) -> Path | None:
    """A Hugging Face model as a local directory: the directory itself, or a hub id fetched
    into (or found in) the local hub cache; None when neither is reachable."""
    if Path(ref).is_dir():
        return Path(ref)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref, allow_patterns=HUB_FILES))
    except Exception as exc:  # noqa: BLE001 - no hub, no cache, gated: the caller explains
        log.info("Hugging Face %s not reachable: %s", ref, exc)
        return None


def is_causal_lm(ref: str) -> bool:
    """Whether a Hugging Face model (directory or reachable hub id) is a causal LM."""
    import json

    directory = local_hf_dir(ref)
    if directory is None:
        return False
    config = directory / "config.json"
    if not config.is_file():
        return False
    architectures = json.loads(config.read_text()).get("architectures") or []
    return any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in architectures)


def load_hf_causal_lm(ref: str, name: str | None = None) -> ModelArtifact:
    """A text-generation model as a directory every runtime loads (no weights in memory).

    The digest covers the weight and tokenizer files, so exported and quantized copies
    are cached per model content.
    """
    import json

    directory = local_hf_dir(ref)
    if directory is None:
        raise UsageError(f"{ref}: not a local directory, and no hub or hub cache has it")
    files = sorted(p for p in directory.iterdir() if p.is_file() and (
        p.suffix in (".safetensors", ".bin") or p.name in TOKENIZER_FILES))
    if not any(p.suffix in (".safetensors", ".bin") for p in files):
        raise UsageError(f"{ref}: no weights (*.safetensors or *.bin) in the directory")
    config = json.loads((directory / "config.json").read_text())
    if not any((directory / name).is_file() for name in TOKENIZER_FILES[1:]):
        raise UsageError(f"{ref}: no tokenizer files; save the tokenizer next to the model")
    weight_bytes = sum(p.stat().st_size for p in files if p.suffix in (".safetensors", ".bin"))
    return ModelArtifact(
        name=name or (directory.name if Path(ref).is_dir() else ref),
        format=HF_CAUSAL_LM,
        path=str(directory),
        input_shape=(),
        input_dtype="int64",
        num_outputs=int(config.get("vocab_size", 0)),
        weights=f"huggingface {ref}",
        weights_trained=True,
        digest=file_digest(*files),
        reference_backend="torch",
        info={"architecture": ",".join(config.get("architectures") or []),
              "file_bytes": weight_bytes,
              "parameters": _parameter_count(directory)},
    )


def _parameter_count(directory: Path) -> int | None:
    """Parameters from safetensors headers (no weights are read)."""
    import json
    import struct

    total = 0
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    for path in files:
        with path.open("rb") as handle:
            size = struct.unpack("<Q", handle.read(8))[0]
            header = json.loads(handle.read(size))
        for key, meta in header.items():
            if key != "__metadata__":
                count = 1
                for d in meta["shape"]:
                    count *= d
                total += count
    return total
