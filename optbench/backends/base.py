"""The Backend contract: load / infer / synchronize / close, driven by the shared loop.

A backend owns the conversion of a ModelArtifact into its native form (ONNX export,
OpenVINO IR, TensorRT engine), including numeric precision through its own toolchain,
cached by the artifact's digest. It never times itself: `optbench.measure.loop` does that.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.errors import Availability, module_availability

__all__ = ["Availability", "Backend", "BackendConfig", "LoadContext", "file_bytes",
           "module_availability"]  # Availability: re-exported for third-party plugins


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
        batch_size: the batch size every `infer` call will use.
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
        formats: artifact formats `load` accepts.
        precisions: per device, the precisions this backend runs natively.
        runs_qdq_int8: whether it runs a model already quantized by QAT (Q/DQ nodes).
        weight_only_bits: weight widths of its weight-only path for language models.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type] = BackendConfig
    formats: ClassVar[tuple[str, ...]] = ("torch",)
    precisions: ClassVar[dict[str, tuple[str, ...]]] = {"cpu": ("fp32",)}
    runs_qdq_int8: ClassVar[bool] = False  # runs a QAT model's asymmetric int8 Q/DQ graph
    weight_only_bits: ClassVar[tuple[int, ...]] = ()  # language models: woq int8 / int4

    def __init__(self, config: Any = None, device: str = "cpu") -> None:
        self.config = config if config is not None else self.Config()
        self.device = device
        self.lm: Any = None  # a CausalLM, when `load` got a text-generation model

    def causal_lm(self) -> Any:
        """The loaded text generator (artifacts of format hf-causal-lm), for the
        generation loop; see optbench.backends.lm.base.CausalLM."""
        if self.lm is None:
            raise TypeError(f"{self.name} has no text-generation model loaded")
        return self.lm

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
            return Availability.no(
                f"{cls.name} cannot load a {artifact_format} model (accepts: "
                f"{', '.join(cls.formats)})"
            )
        return Availability.yes()

    @abstractmethod
    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        """Convert (cached) and load `artifact` for batches of `ctx.batch_size`."""

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
