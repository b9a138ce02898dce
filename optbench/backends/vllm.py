"""vLLM offline engine for LLM workloads (GPU only). Availability until the LLM issue lands."""

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
    max_num_seqs: int = 16


class VllmBackend(Backend):
    name = "vllm"
    Config = VllmConfig
    formats = ("hf-causal-lm",)
    precisions = {"cuda": ("fp16", "bf16")}

    @classmethod
    def availability(cls) -> Availability:
        found = module_availability("vllm", extra="vllm")
        if not found:
            return Availability.no(
                "vLLM is not installed (it ships CUDA-only wheels: an NVIDIA GPU and "
                "pip install 'optbench[vllm]', or the project's CUDA Docker image)"
            )
        return Availability.no("the vLLM text-generation workload is not implemented yet")

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        raise Unavailable(self.availability().reason)

    def infer(self, inputs: Any) -> Any:
        raise Unavailable(self.availability().reason)
