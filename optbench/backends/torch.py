"""PyTorch: eager or torch.compile; int8 through torchao pt2e static quantization + inductor.

Settings that make the runtime fast and the figures fair:
- inference runs under torch.inference_mode, entered once in load (not per call);
- int8 uses X86InductorQuantizer with `torch._inductor.config.freezing = True`; without
  freezing the quantized graph runs several times slower (platform notes: 81 vs 15 ms);
- the first inference happens in load, so compilation never lands in a measured phase;
- on CUDA, fp32 means fp32: TF32 tensor-core math (on by default for cuDNN convolutions)
  is switched off unless the `tf32` option asks for it, and describe() records it. On an
  H100, ResNet-50 "fp32" with TF32 agreed with the CPU fp32 reference on 96% of inputs.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
from optbench.backends.base import (
    Availability,
    Backend,
    BackendConfig,
    LoadContext,
    module_availability,
)
from optbench.backends.lm import torch_lm
from optbench.models.torchnet import eval_mode

log = logging.getLogger(__name__)
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "float32"}


@dataclass(frozen=True)
class TorchConfig(BackendConfig):
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    threads: int | None = None
    channels_last: bool = False
    tf32: bool = False


def calibration_batches(samples: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Group single samples into batches of the exported (static) batch size, wrapping."""
    if not samples:
        raise ValueError("int8 needs calibration samples")
    stacked = np.concatenate(samples)
    count = max(1, len(stacked) // batch_size)
    idx = np.arange(count * batch_size) % len(stacked)
    return [stacked[idx[i * batch_size:(i + 1) * batch_size]] for i in range(count)]


def quantize_pt2e_int8(module: Any, example: Any, calibration: list[Any]) -> Any:
    """torchao pt2e static int8 for x86 + inductor lowering (the pure work of `--int8`)."""
    import torch
    import torch._inductor.config as inductor_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    inductor_config.freezing = True
    exported = torch.export.export(module, (example,)).module()
    quantizer = X86InductorQuantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    for batch in calibration:
        prepared(batch)
    converted = convert_pt2e(prepared)
    return torch.compile(converted)


class TorchBackend(Backend):
    name = "torch"
    Config = TorchConfig
    weight_only_bits = (8, 4)  # language models: the woq transform's options
    formats = ("torch", HF_CAUSAL_LM)
    lm_loader = staticmethod(torch_lm.load)
    precisions = {"cpu": ("fp32", "bf16", "int8"), "cuda": ("fp32", "fp16", "bf16")}
    runs_qdq_int8 = True

    @classmethod
    def availability(cls) -> Availability:
        return module_availability("torch", extra="torch")

    @classmethod
    def device_support(cls, device: str) -> Availability:
        from importlib import metadata

        if device == "cuda":
            try:
                if metadata.version("torch").endswith("+cpu"):
                    return Availability.no("the installed torch is a CPU-only build")
            except metadata.PackageNotFoundError:
                return Availability.no("torch is not installed")
        return super().device_support(device)

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        import torch

        threads = self.config.threads or os.cpu_count() or 1
        torch.set_num_threads(threads)
        self._mode = torch.inference_mode()
        self._mode.__enter__()
        self.torch_device = torch.device(ctx.device)
        if ctx.device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.config.tf32
            torch.backends.cudnn.allow_tf32 = self.config.tf32
            torch.backends.cudnn.benchmark = True
        self.dtype = getattr(torch, TORCH_DTYPES[artifact.precision])
        self.memory_format = (torch.channels_last if self.config.channels_last
                              else torch.contiguous_format)
        module = eval_mode(copy.deepcopy(artifact.module)).to(self.torch_device)
        example = torch.zeros((ctx.batch_size, *artifact.input_shape), device=self.torch_device)
        started = time.monotonic()
        if artifact.quantization == "qat-qdq":
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True  # inductor then lowers the Q/DQ pattern to int8
            model = torch.compile(module)
            self.path = "torchao pt2e QAT int8 + inductor (freezing)"
        elif artifact.precision == "int8":
            batches = [torch.from_numpy(b) for b in
                       calibration_batches(list(ctx.calibration), ctx.batch_size)]
            model = quantize_pt2e_int8(module, example, batches)
            self.path = "torchao pt2e X86InductorQuantizer static int8 + inductor (freezing)"
        else:
            module = module.to(dtype=self.dtype, memory_format=self.memory_format)
            model = torch.compile(module, mode=self.config.compile_mode) if self.config.compile \
                else module
            mode = "torch.compile" if self.config.compile else "eager"
            self.path = f"{mode} {artifact.precision}"
        self.model = model
        # PTQ int8 weights exist only inside the compiled graph; their size is not read here.
        self.weight_bytes = (None if self.path.startswith("torchao pt2e X86") else
                             sum(t.numel() * t.element_size() for t in module.state_dict().values()
                                 if torch.is_tensor(t)))
        self.synchronize()
        self.model(self.prepare(example.cpu().numpy()))
        self.synchronize()
        self.first_inference_s = time.monotonic() - started
        self.threads = threads

    def prepare(self, batch: np.ndarray) -> Any:
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.torch_device, self.dtype)
        if tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=self.memory_format)
        return tensor

    def infer(self, inputs: Any) -> Any:
        import torch

        if torch.is_inference_mode_enabled():
            return self.model(inputs)
        # inference mode is per thread: a serving worker thread enters it here
        with torch.inference_mode():
            return self.model(inputs)

    def infer_timed(self, inputs: Any) -> tuple[Any, float | None]:
        if self.device != "cuda":
            return self.model(inputs), None
        import torch

        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        out = self.infer(inputs)
        end.record()
        end.synchronize()
        return out, start.elapsed_time(end) / 1e3

    def to_numpy(self, outputs: Any) -> np.ndarray:
        return outputs.float().cpu().numpy()

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def close(self) -> None:
        if getattr(self, "_mode", None) is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None

    def describe(self) -> dict[str, Any]:
        import torch

        info = {"name": self.name, "runtime": f"torch {torch.__version__}", "path": self.path,
                "threads": self.threads, "compile": self.config.compile,
                "channels_last": self.config.channels_last,
                "load_and_first_inference_s": round(self.first_inference_s, 3),
                "model_bytes": self.weight_bytes}
        if self.device == "cuda":
            info["gpu"] = torch.cuda.get_device_name()
            info["tf32"] = torch.backends.cudnn.allow_tf32
            info["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        return info
