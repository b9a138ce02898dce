"""ONNX Runtime (CPU execution provider); int8 through `quantize_static` in QDQ format.

int8 follows ORT's documented CPU recipe: `quant_pre_process` (shape inference and graph
optimization), then static QDQ with uint8 activations and int8 per-channel weights,
calibrated on the workload's calibration split. Dynamic quantization is not used for
CNNs: on this class of CPU it is slower than fp32 (platform notes: 188 vs 40 ms).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from optbench.artifact import CLASSIC, HF_CAUSAL_LM, ModelArtifact
from optbench.backends.base import (
    Availability,
    Backend,
    BackendConfig,
    LoadContext,
    file_bytes,
    module_availability,
)
from optbench.backends.lm import ort_lm
from optbench.backends.onnx_export import onnx_file, onnx_input_name, quantize_qdq_int8
from optbench.errors import Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrtConfig(BackendConfig):
    threads: int | None = None
    provider: Literal["auto", "cpu", "cuda", "tensorrt"] = "auto"
    graph_optimization: Literal["all", "extended", "basic", "disabled"] = "all"
    per_channel: bool = True
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = "EXHAUSTIVE"
    allow_tf32: bool = False  # the CUDA provider's use_tf32 (on by default in ORT)


NO_TF32_ENV = "NVIDIA_TF32_OVERRIDE"
PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                  "tensorrt": "TensorrtExecutionProvider"}


def tensorrt_cache_dir(cache: Path, gpu: str, trt_version: str) -> Path:
    """ORT's TensorRT engines and timing caches fit one GPU model and one TensorRT version
    (ORT names engine files by model and shapes only): a directory per pair."""
    model = "".join(c if c.isalnum() else "-" for c in gpu).strip("-").lower() or "gpu"
    return cache / "ort-trt" / f"trt{trt_version}-{model}"


def installed_tensorrt() -> str:
    """The TensorRT version installed (its wheels' metadata), or "unknown"."""
    from importlib import metadata

    for name in ("tensorrt-cu13-libs", "tensorrt-cu12-libs", "tensorrt-libs", "tensorrt"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def provider_list(provider: str, device_id: int, cache: Path, precision: str,
                  cudnn_conv_algo_search: str, allow_tf32: bool = False,
                  gpu: str = "unknown", trt_version: str = "unknown") -> list[Any]:
    """ONNX Runtime providers with their options, most preferred first (pure). fp32 means
    fp32: the CUDA provider's TF32 (`use_tf32`, on by default) is off unless allowed."""
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    cuda = ("CUDAExecutionProvider", {"device_id": device_id,
                                      "cudnn_conv_algo_search": cudnn_conv_algo_search,
                                      "use_tf32": int(allow_tf32)})
    if provider == "cuda":
        return [cuda, "CPUExecutionProvider"]
    trt_cache = str(tensorrt_cache_dir(cache, gpu, trt_version))
    trt = ("TensorrtExecutionProvider", {
        "device_id": device_id, "trt_fp16_enable": precision == "fp16",
        "trt_int8_enable": precision == "int8", "trt_engine_cache_enable": True,
        "trt_engine_cache_path": trt_cache, "trt_timing_cache_enable": True,
        "trt_timing_cache_path": trt_cache})
    return [trt, cuda, "CPUExecutionProvider"]


def check_session_providers(provider: str, got: list[str]) -> None:
    """The session must run on the provider asked for: ORT falls back to the next one in
    the list (a TensorRT provider whose libnvinfer is not on the library path, a CUDA
    provider without cuDNN) with only a log line, which would label a CUDA or CPU run as
    TensorRT. `got` is `session.get_providers()`, what the session really has."""
    wanted = PROVIDER_NAMES[provider]
    if not got or got[0] != wanted:
        raise Unavailable(f"ONNX Runtime could not create the {wanted} (the session fell back "
                          f"to {', '.join(got) or 'nothing'}): its libraries are missing or "
                          "do not match this onnxruntime-gpu build; run `optbench env --check`")


def gpu_runtime_installed() -> bool:
    """onnxruntime-gpu is a separate distribution; the CPU wheel has no CUDA provider."""
    from importlib import metadata

    try:
        metadata.version("onnxruntime-gpu")
        return True
    except metadata.PackageNotFoundError:
        return False


class OrtBackend(Backend):
    """ONNX Runtime on the CPU, CUDA or TensorRT execution provider.

    On a GPU, inputs are copied to the device in `prepare` and bound with IOBinding, with
    the output bound on the device too: timing covers the run, not host copies, as in a
    deployment that keeps tensors on the GPU. fp16 runs a half-precision export; int8 on a
    GPU needs the TensorRT provider (the CUDA provider has no int8 convolutions).
    """

    name = "ort"
    Config = OrtConfig
    weight_only_bits = (8, 4)  # language models: the woq transform's options
    formats = ("torch", "onnx", CLASSIC, HF_CAUSAL_LM)
    lm_loader = staticmethod(ort_lm.load)
    precisions = {"cpu": ("fp32", "int8"), "cuda": ("fp32", "fp16", "int8")}
    runs_qdq_int8 = True

    @classmethod
    def availability(cls) -> Availability:
        return module_availability("onnxruntime", "onnx", extra="ort")

    @classmethod
    def device_support(cls, device: str) -> Availability:
        if device == "cuda" and not gpu_runtime_installed():
            return Availability.no("onnxruntime-gpu is not installed (the onnxruntime wheel "
                                   "has no CUDA or TensorRT provider)")
        return super().device_support(device)

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        import onnxruntime as ort

        provider = self.config.provider if self.config.provider != "auto" else (
            "cuda" if ctx.device == "cuda" else "cpu")
        if (provider == "cpu") != (ctx.device == "cpu"):
            raise Unavailable(f"provider '{provider}' does not run on {ctx.device}")
        if provider == "cuda" and artifact.precision == "int8":
            raise Unavailable("the CUDA execution provider has no int8 convolutions; use "
                              "provider: tensorrt for int8 on a GPU")
        path = self._model_file(artifact, ctx, for_tensorrt=provider == "tensorrt")
        options = ort.SessionOptions()
        self.threads = self.config.threads or os.cpu_count() or 1
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        options.graph_optimization_level = levels[self.config.graph_optimization]
        gpu = "unknown"
        if provider == "tensorrt":
            from optbench.env import gpu_inventory

            devices = gpu_inventory().get("devices") or [{}]
            gpu = devices[0].get("name", "unknown")
        providers = provider_list(provider, 0, ctx.cache_dir, artifact.precision,
                                  self.config.cudnn_conv_algo_search, self.config.allow_tf32,
                                  gpu, installed_tensorrt() if provider == "tensorrt" else "")
        missing = {p if isinstance(p, str) else p[0] for p in providers} - set(
            ort.get_available_providers())
        if provider != "cpu" and missing - {"CPUExecutionProvider"}:
            raise Unavailable(f"onnxruntime here lacks {', '.join(sorted(missing))} "
                              f"(available: {', '.join(ort.get_available_providers())})")
        if provider != "cpu" and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # the pip-installed CUDA and cuDNN libraries, as ORT documents
        if provider == "tensorrt" and not self.config.allow_tf32:
            # the TensorRT provider has no TF32 option; NVIDIA's switch is process-wide (this
            # is the configuration's own child process) and read when CUDA starts
            os.environ.setdefault(NO_TF32_ENV, "0")
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        check_session_providers(provider, self.session.get_providers())
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.input_dtype = np.float16 if artifact.precision == "fp16" else np.float32
        self.on_gpu = provider != "cpu"
        self.model_path, self.precision, self.provider = path, artifact.precision, provider
        self.quantized_by_training = bool(artifact.quantization)
        self.infer(self.prepare(np.zeros((ctx.batch_size, *artifact.input_shape), np.float32)))

    def _model_file(self, artifact: ModelArtifact, ctx: LoadContext,
                    for_tensorrt: bool = False) -> Path:
        if artifact.precision == "fp16":
            if artifact.format != "torch":
                raise Unavailable("fp16 on ONNX Runtime needs a torch model to export in fp16")
            import copy

            cast = copy.deepcopy(artifact.module).half()
            return onnx_file(artifact.derive("onnx-fp16", module=cast), ctx.cache_dir, "fp16")
        path = onnx_file(artifact, ctx.cache_dir)
        if artifact.precision != "int8" or artifact.quantization:
            return path  # float, or already Q/DQ from quantization-aware training
        cfg = self.config
        qpath = ctx.cache_dir / "onnx" / (
            f"{artifact.digest}-int8-{cfg.calibration_method}"
            f"-{'pc' if cfg.per_channel else 'pt'}{'-trt' if for_tensorrt else ''}"
            f"-n{len(ctx.calibration)}.onnx")
        if not qpath.is_file():
            log.info("quantizing %s with ORT quantize_static (QDQ)", artifact.name)
            quantize_qdq_int8(path, qpath, onnx_input_name(path), ctx.calibration,
                              cfg.per_channel, cfg.calibration_method, for_tensorrt)
        return qpath

    def prepare(self, batch: np.ndarray) -> Any:
        x = np.ascontiguousarray(batch, dtype=self.input_dtype)
        if not self.on_gpu:
            return {self.input_name: x}
        import onnxruntime as ort

        binding = self.session.io_binding()
        value = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)  # host -> device, untimed
        binding.bind_ortvalue_input(self.input_name, value)
        binding.bind_output(self.output_name, "cuda", 0)
        return (binding, value)

    def infer(self, inputs: Any) -> Any:
        if not self.on_gpu:
            return self.session.run(None, inputs)[0]
        binding, _ = inputs
        self.session.run_with_iobinding(binding)
        return binding

    def to_numpy(self, outputs: Any) -> np.ndarray:
        if not self.on_gpu:
            return np.asarray(outputs)
        return np.asarray(outputs.copy_outputs_to_cpu()[0], dtype=np.float32)

    def synchronize(self) -> None:
        if getattr(self, "on_gpu", False):
            # run_with_iobinding returns when the outputs are ready on ORT's stream
            pass

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        int8 = "quantize_static QDQ s8/s8 float bias" if self.provider == "tensorrt" else \
            "quantize_static QDQ u8/s8"
        path = {"int8": int8, "fp16": "fp16 export"}.get(self.precision, "fp32")
        if self.quantized_by_training:
            path = "QAT int8 (Q/DQ)"
        return {"name": self.name, "runtime": f"onnxruntime {ort.__version__}",
                "providers": self.session.get_providers(), "threads": self.threads,
                "precision": self.precision, "model_file": self.model_path.name,
                "model_bytes": file_bytes(self.model_path),
                "io_binding": self.on_gpu,
                "timing_excludes_host_copies": self.on_gpu, "path": f"{path} ({self.provider})"}
