"""vLLM offline engine for text generation (GPU only); the work is in lm/vllm_lm.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optbench.artifact import ModelArtifact
from optbench.backends.base import (
    Availability,
    Backend,
    BackendConfig,
    LoadContext,
    module_availability,
)
from optbench.errors import Unavailable


@dataclass(frozen=True)
class VllmConfig(BackendConfig):
    max_num_seqs: int | None = None  # None: the run's batch size (requests in flight)
    gpu_memory_utilization: float = 0.5
    enforce_eager: bool = False
    max_model_len: int | None = None


class VllmBackend(Backend):
    name = "vllm"
    Config = VllmConfig
    weight_only_bits = (4,)  # language models: the woq transform's options
    formats = ("hf-causal-lm",)
    precisions = {"cuda": ("fp32", "fp16", "bf16")}

    @classmethod
    def availability(cls) -> Availability:
        found = module_availability("vllm", extra="vllm")
        if not found:
            return Availability.no(
                "vLLM is not installed (it ships CUDA-only wheels: an NVIDIA GPU and "
                "pip install 'optbench[vllm]', or the project's CUDA Docker image)"
            )
        return Availability.yes()

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        from optbench.backends.lm.vllm_lm import VllmLM

        if artifact.format != "hf-causal-lm":
            raise Unavailable("vLLM runs text-generation models only")
        self.lm = VllmLM(artifact, ctx.batch_size, self.config)

    def infer(self, inputs: Any) -> Any:
        raise TypeError("vLLM runs text generation only; the generation loop drives it")

    def close(self) -> None:
        if self.lm is not None:
            self.lm.close()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **(self.lm.describe() if self.lm is not None else {})}
