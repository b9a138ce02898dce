"""`optbench env --check`: every backend on every device tried for real, tiny, in seconds.

Each path runs a one-layer model (or one energy read) the way a run would, in its own
process (a CUDA library that crashes or hangs takes only its own check down), and says
`works` with what it ran on, or the exact reason it cannot: the library that was not
found, a driver too old for this CUDA, a provider that fell back to another, no device, a
permission. Imports stay inside each check: a path whose library is missing is a reason,
never an ImportError.

    python -m optbench.run.selfcheck PATH   # one check, its result as JSON on stdout
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from optbench.errors import Unavailable

CHECK_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class PathResult:
    path: str
    ok: bool
    detail: str  # what it ran on, or why it cannot
    seconds: float

    def line(self) -> str:
        return f"{'works' if self.ok else 'unavailable':<12} {self.path:<13} {self.detail}"


def tiny_onnx(path: Path) -> Path:
    """y = relu(x @ W + b): the one-layer model the ONNX paths run (input `x`, [n, 8])."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
         helper.make_node("Relu", ["a"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "w"),
         numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="optbench-check-"))


def check_torch_cpu(torch: Any = None) -> str:
    torch = torch or _import("torch", "pip install 'optbench[torch]'")
    layer = torch.nn.Linear(8, 4)
    out = layer(torch.ones(2, 8))
    assert tuple(out.shape) == (2, 4)
    return f"torch {torch.__version__}: a one-layer model ran on the CPU"


def cuda_reason(torch: Any) -> str | None:
    """Why torch cannot use CUDA here, or None when it can."""
    if getattr(torch.version, "cuda", None) is None:
        return f"torch {torch.__version__} is a CPU build (no CUDA in it)"
    if torch.cuda.is_available():
        return None
    try:
        torch.cuda.init()  # raises with the driver's own words (too old, not loaded, ...)
    except Exception as exc:  # noqa: BLE001  # its message is the reason
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) cannot use CUDA: {exc}"
    return f"no CUDA device visible to torch {torch.__version__} (CUDA {torch.version.cuda})"


def check_torch_cuda(torch: Any = None) -> str:
    torch = torch or _import("torch", "pip install 'optbench[torch]'")
    reason = cuda_reason(torch)
    if reason:
        raise Unavailable(reason)
    layer = torch.nn.Linear(8, 4).cuda()
    out = layer(torch.ones(2, 8, device="cuda"))
    torch.cuda.synchronize()
    assert tuple(out.shape) == (2, 4)
    tf32 = "on" if torch.backends.cuda.matmul.allow_tf32 else "off"
    sm = "".join(map(str, torch.cuda.get_device_capability()))
    return (f"{torch.cuda.get_device_name()} (sm{sm}), torch {torch.__version__}, CUDA "
            f"{torch.version.cuda}, TF32 matmul {tf32} by default")


def check_ort(provider: str, ort: Any = None, gpu_installed: Callable[[], bool] | None = None
              ) -> str:
    from optbench.backends.ort import (
        PROVIDER_NAMES,
        check_session_providers,
        gpu_runtime_installed,
        provider_list,
    )

    ort = ort or _import("onnxruntime", "pip install 'optbench[ort]'")
    wanted = PROVIDER_NAMES[provider]
    if provider != "cpu":
        if not (gpu_installed or gpu_runtime_installed)():
            raise Unavailable("onnxruntime-gpu is not installed (the onnxruntime wheel has no "
                              "CUDA or TensorRT provider)")
        if hasattr(ort, "preload_dlls"):  # the pip NVIDIA libraries, the documented way
            ort.preload_dlls()
        if wanted not in ort.get_available_providers():
            raise Unavailable(f"onnxruntime {ort.__version__} has no {wanted} (it has "
                              f"{', '.join(ort.get_available_providers())})")
    path = tiny_onnx(_tmp() / "tiny.onnx")
    session = ort.InferenceSession(str(path), providers=provider_list(
        provider, 0, path.parent, "fp32", "HEURISTIC"))
    got = list(session.get_providers())
    check_session_providers(provider, got)
    import numpy as np

    out = session.run(None, {"x": np.ones((2, 8), np.float32)})[0]
    assert out.shape == (2, 4)
    return f"onnxruntime {ort.__version__}: the session runs on {got[0]}"


def check_openvino() -> str:
    ov = _import("openvino", "pip install 'optbench[openvino]'")
    import numpy as np

    compiled = ov.Core().compile_model(str(tiny_onnx(_tmp() / "tiny.onnx")), "CPU")
    out = compiled(np.ones((2, 8), np.float32))[compiled.output(0)]
    assert out.shape == (2, 4)
    return f"openvino {ov.__version__}: compiled and ran on the CPU"


def _with_cuda(module: str, label: str, how: str) -> tuple[Any, Any]:
    """(the GPU library, torch) when both import and torch can use CUDA."""
    library = _import(module, how)
    torch = _import("torch", "pip install 'optbench[torch]'")
    reason = cuda_reason(torch)
    if reason:
        raise Unavailable(f"{label} {library.__version__} is installed, but {reason}")
    return library, torch


def check_tensorrt() -> str:
    trt, torch = _with_cuda("tensorrt", "TensorRT", "it needs an NVIDIA GPU with a CUDA "
                            "driver, then pip install 'optbench[trt]', or the project's GPU "
                            "image")
    from optbench.backends.trt import TensorRtConfig, build_engine, build_plan, torch_dtype

    major = int(trt.__version__.split(".")[0])
    plan = build_plan("fp32", major, 2, (8,), TensorRtConfig())
    blob = build_engine(trt, tiny_onnx(_tmp() / "tiny.onnx"), plan, None)
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(blob)
    context = engine.create_execution_context()
    x = torch.ones(2, 8, device="cuda")
    y = torch.empty(2, 4, device="cuda", dtype=torch_dtype(trt, engine.get_tensor_dtype("y")))
    context.set_input_shape("x", (2, 8))
    context.set_tensor_address("x", x.data_ptr())
    context.set_tensor_address("y", y.data_ptr())
    stream = torch.cuda.Stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise RuntimeError("execute_async_v3 returned False")
    stream.synchronize()
    return f"TensorRT {trt.__version__}: built an fp32 engine and ran it on " \
           f"{torch.cuda.get_device_name()}"


def check_vllm() -> str:
    vllm, _ = _with_cuda("vllm", "vLLM", "it needs an NVIDIA GPU: pip install "
                         "'optbench[vllm]' in its own environment (docs/gpu.md)")
    from transformers import LlamaConfig, LlamaForCausalLM

    target = _tmp() / "tiny-llama"
    config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=128)
    LlamaForCausalLM(config).save_pretrained(target)
    llm = vllm.LLM(model=str(target), skip_tokenizer_init=True, dtype="float16",
                   gpu_memory_utilization=0.2, enforce_eager=True, max_model_len=128)
    params = vllm.SamplingParams(max_tokens=4, detokenize=False)
    outputs = llm.generate([{"prompt_token_ids": [1, 2, 3, 4]}], params)
    tokens = len(outputs[0].outputs[0].token_ids)
    return f"vLLM {vllm.__version__}: a random 2-layer Llama generated {tokens} tokens"


def check_meter(name: str, device: str, meters: Any = None) -> str:
    from optbench.meters import METERS
    from optbench.meters.base import MeterContext

    cls = (meters or METERS).get(name)
    ctx = MeterContext(device=device)
    available = cls.availability(ctx)
    if not available:
        raise Unavailable(available.reason)
    meter = cls(ctx)
    meter.open()
    try:
        meter.start()
        time.sleep(0.2)
        readings = meter.stop()
    finally:
        meter.close()
    measured = [r for r in readings if r.energy_j is not None]
    if not measured:
        raise Unavailable("the meter opened but read no energy: "
                          + "; ".join(str(r.reason) for r in readings))
    return ", ".join(f"{r.channel} {r.energy_j:.3g} J in 0.2 s ({r.method})" for r in measured)


CHECKS: dict[str, Callable[[], str]] = {
    "torch:cpu": check_torch_cpu,
    "torch:cuda": check_torch_cuda,
    "ort:cpu": lambda: check_ort("cpu"),
    "ort:cuda": lambda: check_ort("cuda"),
    "ort:tensorrt": lambda: check_ort("tensorrt"),
    "openvino:cpu": check_openvino,
    "trt:cuda": check_tensorrt,
    "vllm:cuda": check_vllm,
    "nvml": lambda: check_meter("nvml", "cuda"),
    "rapl": lambda: check_meter("rapl", "cpu"),
}


def _import(module: str, how: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(f"{module} cannot be imported ({exc}); {how}") from None


def run_here(path: str) -> PathResult:
    """One check in this process."""
    start = time.monotonic()
    try:
        detail, ok = CHECKS[path](), True
    except Unavailable as exc:
        detail, ok = str(exc), False
    except Exception as exc:  # noqa: BLE001  # a check that breaks says how, as its reason
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return PathResult(path, ok, detail, time.monotonic() - start)


def run_isolated(path: str, timeout_s: float = CHECK_TIMEOUT_S) -> PathResult:
    """One check in a child process: a crash or a hang is its result, not ours."""
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "optbench.run.selfcheck", path],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return PathResult(path, False, f"did not finish in {timeout_s:.0f} s",
                          time.monotonic() - start)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return PathResult(**json.loads(lines[-1]))
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else \
        f"exit code {proc.returncode}"
    return PathResult(path, False, f"the check's process ended ({how}): {tail}",
                      time.monotonic() - start)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: python -m optbench.run.selfcheck {{{','.join(CHECKS)}}}",
              file=sys.stderr)
        return 2
    print(json.dumps(asdict(run_here(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
