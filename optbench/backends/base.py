"""The two backend contracts, both driven by the shared loops.

- Vision (every format but HF_CAUSAL_LM): a Backend instance's load / prepare / infer /
  to_numpy / synchronize / close / describe, driven by `optbench.measure.loop`.
- Text generation (HF_CAUSAL_LM): the class attribute `lm_loader` turns the artifact into
  a CausalLM (backends/lm/base.py), driven by `optbench.measure.generation`; None when the
  backend cannot generate text. `load_causal_lm` is the one way to call it.

A backend owns the conversion of a ModelArtifact into its native form (ONNX export,
OpenVINO IR, TensorRT engine), including numeric precision through its own toolchain,
cached by the artifact's digest. It never times itself: the loops do that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.backends.lm.base import CausalLM, LmLoader
from optbench.errors import Availability, Unavailable, module_availability

__all__ = ["Availability", "Backend", "BackendConfig", "LoadContext", "file_bytes",
           "load_causal_lm", "module_availability"]  # Availability: for third-party plugins


def file_bytes(*paths: Path) -> int:
    """Size on disk of a model's files (an OpenVINO IR is its .xml and .bin)."""
    return sum(p.stat().st_size for p in paths if p.is_file())


@dataclass(frozen=True)
class BackendConfig:
    """Options every backend accepts; subclasses add their own typed fields."""


@dataclass
class LoadContext:
    """What a backend needs besides the artifact to build its native model.

    Attributes:
        cache_dir: where exported and quantized models are kept, keyed by digest.
        batch_size: the batch size every `infer` call will use (for a text generator: the
            requests of one `generate` call).
        device: "cpu" or "cuda".
        calibration: representative inputs (one sample each, with a batch dim of 1)
            for static quantization; drawn from the workload's training split.
    """

    cache_dir: Path
    batch_size: int
    device: str = "cpu"
    calibration: Sequence[np.ndarray] = field(default_factory=list)


class Backend(ABC):
    """An inference runtime behind a uniform interface.

    Class attributes:
        Config: frozen dataclass of this backend's options.
        formats: artifact formats it accepts: HF_CAUSAL_LM through `lm_loader`, the
            others through `load`.
        precisions: per device, the precisions this backend runs natively.
        runs_qdq_int8: whether it runs a model already quantized by QAT (Q/DQ nodes).
        weight_only_bits: weight widths of its weight-only path for language models.
        lm_loader: its text-generation loader (see LmLoader), or None.

    A backend with no vision side (vLLM) leaves `load` and `infer` abstract: it cannot be
    instantiated, and is reached through its class attributes and `lm_loader` only.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = BackendConfig
    formats: ClassVar[tuple[str, ...]] = ("torch",)
    precisions: ClassVar[dict[str, tuple[str, ...]]] = {"cpu": ("fp32",)}
    runs_qdq_int8: ClassVar[bool] = False  # runs a QAT model's asymmetric int8 Q/DQ graph
    weight_only_bits: ClassVar[tuple[int, ...]] = ()  # language models: woq int8 / int4
    lm_loader: ClassVar[LmLoader | None] = None  # HF_CAUSAL_LM artifact -> CausalLM

    def __init__(self, config: Any = None, device: str = "cpu") -> None:
        self.config = config if config is not None else self.Config()
        self.device = device

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Whether the runtime is installed and usable here; cheap, imports nothing heavy."""

    @classmethod
    def device_support(cls, device: str) -> Availability:
        """Whether this backend's installed runtime can use `device` (cheap, no imports)."""
        if device not in cls.precisions:
            return Availability.no(f"{cls.name} does not run on {device}")
        return Availability.yes()

    @classmethod
    def supports(cls, artifact_format: str, precision: str, device: str) -> Availability:
        """Whether this backend can run an artifact of this format at this precision."""
        if device not in cls.precisions:
            return Availability.no(
                f"{cls.name} does not run on {device} (devices: {', '.join(cls.precisions)})"
            )
        if precision not in cls.precisions[device]:
            return Availability.no(
                f"{cls.name} on {device} has no native {precision} path "
                f"(supported: {', '.join(cls.precisions[device])})"
            )
        if artifact_format not in cls.formats:
            return Availability.no(_refusal(cls, artifact_format))
        return Availability.yes()

    @abstractmethod
    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        """Convert (cached) and load `artifact` (any format but HF_CAUSAL_LM) for batches
        of `ctx.batch_size`."""

    def prepare(self, batch: np.ndarray) -> Any:
        """Host array -> the runtime's native input. Called outside timed regions."""
        return batch

    @abstractmethod
    def infer(self, inputs: Any) -> Any:
        """Run one batch. Must not copy outputs back to the host unless the runtime must."""

    def infer_timed(self, inputs: Any) -> tuple[Any, float | None]:
        """`infer`, plus the device's own time for it in seconds where the runtime can tell
        (CUDA events); None elsewhere. Used by the latency pass only."""
        return self.infer(inputs), None

    def to_numpy(self, outputs: Any) -> np.ndarray:
        """Native output -> host array of shape (batch, num_outputs). Outside timed regions."""
        return np.asarray(outputs)

    def synchronize(self) -> None:
        """Block until queued device work is done (window edges, per-iteration timing)."""

    def close(self) -> None:
        """Release the runtime's resources."""

    def describe(self) -> dict[str, Any]:
        """Runtime version and the effective settings, stored with the run."""
        return {"name": self.name}


def load_causal_lm(backend_cls: type[Backend], artifact: ModelArtifact, ctx: LoadContext,
                   config: Any = None) -> CausalLM:
    """`backend_cls`'s text generator for `artifact` (format HF_CAUSAL_LM), built by its
    `lm_loader` with `config` (default: the backend's default Config). A backend without
    one raises Unavailable with the reason `supports` gives for the format."""
    loader = backend_cls.lm_loader
    if loader is None:
        raise Unavailable(_refusal(backend_cls, artifact.format))
    return loader(artifact, ctx, config if config is not None else backend_cls.Config())


def _refusal(backend_cls: type[Backend], artifact_format: str) -> str:
    return (f"{backend_cls.name} cannot load a {artifact_format} model (accepts: "
            f"{', '.join(backend_cls.formats)})")
