"""NVIDIA TensorRT: ONNX -> engine, cached; fp32, fp16, bf16, int8 on CUDA GPUs.

Written against the TensorRT 10 Python API (docs.nvidia.com/deeplearning/tensorrt,
samples/python in NVIDIA/TensorRT) and its 11.x migration notes; verified here only with
a fake `tensorrt` module: no machine available to this project had TensorRT installed
(docs/gpu-validation.md says what ran on a GPU).

- Network: `builder.create_network(0)` (explicit batch is the only mode since 10.0);
  `OnnxParser.parse_from_file`, parser errors reported in full.
- Precision: fp32 clears TF32 (on by default) for a true fp32 baseline; fp16 / bf16 set
  the builder flag on TensorRT 10, or build a strongly typed network from an ONNX export
  in that precision on TensorRT 11 (which removed precision flags). int8 is explicit
  quantization: the ONNX gets symmetric int8 Q/DQ nodes from ONNX Runtime's
  `quantize_static`, calibrated on the workload's calibration split, and the network is
  strongly typed with no precision flags, as NVIDIA recommends (the implicit calibrator
  is deprecated since 10.1 and gone in 11).
- One optimization profile per batch size (min = opt = max = the run's batch), a timing
  cache kept across builds, and an engine cache keyed by the ONNX digest, precision,
  profile, GPU name and compute capability, TensorRT version and build options.
- Execution: name-based tensors, device buffers owned by torch, `execute_async_v3` on the
  current CUDA stream; inputs are copied to the device in `prepare` (outside timing).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.backends.base import (
    Availability,
    Backend,
    BackendConfig,
    LoadContext,
    module_availability,
)
from optbench.backends.onnx_export import onnx_file, onnx_input_name, quantize_qdq_int8
from optbench.cache import atomic_path
from optbench.errors import Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorRtConfig(BackendConfig):
    workspace_bytes: int = 4 << 30
    builder_optimization_level: int = 3
    timing_cache: bool = True
    allow_tf32: bool = False


@dataclass(frozen=True)
class BuildPlan:
    """What to ask the builder for, in names of the documented TensorRT enums."""

    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    cleared_flags: tuple[str, ...]
    onnx_precision: str  # the precision the ONNX export must carry ("fp32", "fp16", "int8-qdq")
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    workspace_bytes: int
    optimization_level: int
    notes: tuple[str, ...] = field(default=())


def build_plan(precision: str, trt_major: int, batch_size: int, input_shape: tuple[int, ...],
               config: TensorRtConfig) -> BuildPlan:
    """Map a precision and options to network/builder flags (pure: no TensorRT import)."""
    shape = (batch_size, *input_shape)
    common = dict(profile=(shape, shape, shape), workspace_bytes=config.workspace_bytes,
                  optimization_level=config.builder_optimization_level)
    tf32 = () if config.allow_tf32 else ("TF32",)
    if trt_major >= 11:
        # 11.x: every network is strongly typed and precision flags are gone; TF32 stays a
        # builder flag, on by default: cleared for a true fp32.
        if precision == "int8":
            return BuildPlan(("STRONGLY_TYPED",), (), (), "int8-qdq", **common)
        note = f"TensorRT {trt_major}: {precision} from a {precision} ONNX export"
        return BuildPlan(("STRONGLY_TYPED",), (), tf32 if precision == "fp32" else (),
                         precision, **common, notes=(note,))
    if precision == "int8":
        return BuildPlan(("STRONGLY_TYPED",), (), (), "int8-qdq", **common,
                         notes=("explicit quantization: Q/DQ ONNX, strongly typed, no flags",))
    flags = {"fp32": (), "fp16": ("FP16",), "bf16": ("BF16",)}[precision]
    return BuildPlan((), flags, tf32 if precision == "fp32" else (), "fp32", **common)


def engine_key(onnx_digest: str, precision: str, plan: BuildPlan, gpu: str,
               capability: tuple[int, int], trt_version: str) -> str:
    """Engines are specific to the GPU model and TensorRT version: all of it is in the key."""
    blob = json.dumps({"onnx": onnx_digest, "precision": precision, "plan": asdict(plan),
                       "gpu": gpu, "sm": list(capability), "trt": trt_version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def torch_dtype(trt: Any, dtype: Any) -> Any:
    """The torch dtype of a TensorRT tensor type; an unknown one is an error, never a
    float32 buffer of the wrong size."""
    import torch

    pairs = [("float32", torch.float32), ("float16", torch.float16), ("bfloat16", torch.bfloat16),
             ("int8", torch.int8), ("int32", torch.int32), ("int64", torch.int64),
             ("bool", torch.bool), ("uint8", torch.uint8)]
    for name, value in pairs:
        if hasattr(trt, name) and dtype == getattr(trt, name):
            return value
    raise Unavailable(f"TensorRT tensor type {dtype} has no torch buffer type here")


def build_engine(trt: Any, onnx_path: Path, plan: BuildPlan, timing_cache: Path | None,
                 input_name: str | None = None) -> bytes:
    """Parse the ONNX file and build a serialized engine following `plan`; the profile is
    set on `input_name`, by default the network's own first input (a user's ONNX names
    it as it likes). A timing cache TensorRT rejects (another GPU or version) is replaced
    by a fresh one rather than failing the build."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network_flags = 0
    for name in plan.network_flags:
        network_flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.optimization_level
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.cleared_flags:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name or network.get_input(0).name, *plan.profile)
    config.add_optimization_profile(profile)
    cache = None
    if timing_cache is not None:
        data = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(data)
        if not config.set_timing_cache(cache, False):
            log.warning("TensorRT rejected the timing cache %s: building with a fresh one",
                        timing_cache)
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the log above)")
    used = config.get_timing_cache() if cache is not None else None
    if used is not None and timing_cache is not None:
        with atomic_path(timing_cache) as tmp:
            tmp.write_bytes(bytes(used.serialize()))
    return bytes(serialized)


def timing_cache_key(gpu: str, capability: tuple[int, int], trt_version: str) -> str:
    """A timing cache holds kernel timings of one GPU model under one TensorRT version:
    two GPUs of one generation (an H100 PCIe and SXM) time differently."""
    model = "".join(c if c.isalnum() else "-" for c in gpu).strip("-").lower()
    return f"{trt_version}-sm{capability[0]}{capability[1]}-{model}"


def gpu_present() -> Availability:
    from optbench.env import gpu_inventory

    inventory = gpu_inventory()
    if inventory.get("devices"):
        return Availability.yes()
    return Availability.no(f"no NVIDIA GPU visible ({inventory.get('reason', 'none found')})")


class TensorRtBackend(Backend):
    name = "trt"
    Config = TensorRtConfig
    formats = ("torch", "onnx")
    precisions = {"cuda": ("fp32", "fp16", "bf16", "int8")}

    @classmethod
    def availability(cls) -> Availability:
        found = module_availability("tensorrt", "torch", extra="trt")
        if not found:
            return Availability.no(
                "TensorRT is not installed: it needs an NVIDIA GPU with a CUDA driver, then "
                "pip install 'optbench[trt]' (NVIDIA's tensorrt wheels), or the project's CUDA "
                "Docker image (Dockerfile, target gpu)")
        return gpu_present()

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        import tensorrt as trt
        import torch

        if ctx.device != "cuda":
            raise Unavailable("TensorRT runs on CUDA devices only")
        major = self.trt_major = int(trt.__version__.split(".")[0])
        plan = build_plan(artifact.precision, major, ctx.batch_size, artifact.input_shape,
                          self.config)
        onnx_path = self._onnx_for(artifact, plan, ctx)
        gpu = torch.cuda.get_device_name()
        capability = torch.cuda.get_device_capability()
        digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:20]
        key = engine_key(digest, artifact.precision, plan, gpu, capability, trt.__version__)
        engine_path = ctx.cache_dir / "trt" / f"{key}.engine"
        logger = trt.Logger(trt.Logger.WARNING)
        if not engine_path.is_file():
            log.info("building TensorRT %s engine for %s (cached afterwards)",
                     artifact.precision, artifact.name)
            key_of_timing = timing_cache_key(gpu, capability, trt.__version__)
            timing = ctx.cache_dir / "trt" / f"timing-{key_of_timing}.cache"
            blob = build_engine(trt, onnx_path, plan,
                                timing if self.config.timing_cache else None)
            with atomic_path(engine_path) as tmp:
                tmp.write_bytes(blob)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {engine_path}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(n for n in names
                               if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_name = next(n for n in names
                                if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        # the engine's own tensor types: what the network was built with, not the label
        self.input_dtype = torch_dtype(trt, self.engine.get_tensor_dtype(self.input_name))
        shape = (ctx.batch_size, *artifact.input_shape)
        self.context.set_input_shape(self.input_name, shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        out_dtype = torch_dtype(trt, self.engine.get_tensor_dtype(self.output_name))
        self.output = torch.empty(out_shape, dtype=out_dtype, device="cuda")
        self.context.set_tensor_address(self.output_name, self.output.data_ptr())
        # a stream of its own: on the default stream TensorRT adds synchronizations
        self.stream = torch.cuda.Stream()
        self.plan, self.engine_path, self.trt_version = plan, engine_path, trt.__version__
        self.precision = artifact.precision
        self.infer(self.prepare(np.zeros(shape, np.float32)))
        self.synchronize()

    def _onnx_for(self, artifact: ModelArtifact, plan: BuildPlan, ctx: LoadContext) -> Path:
        """The ONNX file the plan needs: plain, in reduced precision, or with int8 Q/DQ."""
        if plan.onnx_precision == "int8-qdq":
            base = onnx_file(artifact, ctx.cache_dir)
            name = f"{artifact.digest}-trt-int8-qdq-fbias-n{len(ctx.calibration)}.onnx"
            path = ctx.cache_dir / "onnx" / name
            if not path.is_file():
                # TensorRT takes symmetric int8 Q/DQ (zero point 0) and float biases
                quantize_qdq_int8(base, path, onnx_input_name(base), ctx.calibration,
                                  per_channel=True, method="minmax", for_tensorrt=True)
            return path
        if plan.onnx_precision in ("fp16", "bf16") and artifact.format != "torch":
            # a strongly typed network runs in the precision its file carries
            raise Unavailable(f"TensorRT {self.trt_major} builds an ONNX file in the precision "
                              f"it carries: for {plan.onnx_precision}, give an "
                              f"{plan.onnx_precision} ONNX (NVIDIA ModelOpt's AutoCast "
                              "convert_to_mixed_precision makes one) or a torch model")
        if plan.onnx_precision in ("fp16", "bf16") and artifact.format == "torch":
            import copy

            import torch

            dtype = torch.float16 if plan.onnx_precision == "fp16" else torch.bfloat16
            cast = copy.deepcopy(artifact.module).to(dtype)
            return onnx_file(artifact.derive(f"onnx-{plan.onnx_precision}", module=cast),
                             ctx.cache_dir, dtype=plan.onnx_precision)
        return onnx_file(artifact, ctx.cache_dir)

    def prepare(self, batch: np.ndarray) -> Any:
        import torch

        with torch.cuda.stream(self.stream):  # ordered before the engine's run on it
            return torch.from_numpy(np.ascontiguousarray(batch)).to("cuda", self.input_dtype)

    def infer(self, inputs: Any) -> Any:
        self.context.set_tensor_address(self.input_name, inputs.data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        return self.output

    def to_numpy(self, outputs: Any) -> np.ndarray:
        # the output buffer is reused by the next infer: copy it out
        return outputs.float().cpu().numpy().copy()

    def synchronize(self) -> None:
        self.stream.synchronize()

    def describe(self) -> dict[str, Any]:
        flags = ",".join(self.plan.builder_flags) or "none"
        return {"name": self.name, "runtime": f"tensorrt {self.trt_version}",
                "precision": self.precision, "engine": self.engine_path.name,
                "plan": asdict(self.plan),
                "path": f"TensorRT {self.precision} (network {self.plan.network_flags}, "
                        f"builder flags {flags})"}
