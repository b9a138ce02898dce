"""vLLM offline engine for text generation (GPU only); the work is in lm/vllm_lm.py.

vLLM has no vision side: the backend declares only what `supports` and the text loader
need, and leaves `load` and `infer` abstract, so it cannot be instantiated as a vision
backend. The worker reaches it through `lm_loader` (`VllmLM`).
"""

from __future__ import annotations

from dataclasses import dataclass

from optbench.artifact import HF_CAUSAL_LM
from optbench.backends.base import Availability, Backend, BackendConfig, module_availability
from optbench.backends.lm.vllm_lm import VllmLM


@dataclass(frozen=True)
class VllmConfig(BackendConfig):
    max_num_seqs: int | None = None  # None: the run's batch size (requests in flight)
    gpu_memory_utilization: float = 0.5
    enforce_eager: bool = False
    max_model_len: int | None = None


class VllmBackend(Backend):
    name = "vllm"
    Config = VllmConfig
    weight_only_bits = ()  # no in-flight weight-only scheme matches the woq transform
    formats = (HF_CAUSAL_LM,)
    precisions = {"cuda": ("fp32", "fp16", "bf16")}
    lm_loader = VllmLM

    @classmethod
    def availability(cls) -> Availability:
        found = module_availability("vllm", extra="vllm")
        if not found:
            return Availability.no(
                "vLLM is not installed (it ships CUDA-only wheels: an NVIDIA GPU and "
                "pip install 'optbench[vllm]', or the project's CUDA Docker image)"
            )
        return Availability.yes()
