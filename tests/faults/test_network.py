"""No network at run time: a real CLI run of ort and openvino, fp32 and int8 (NNCF), opens
no socket off this machine: its worker logs hold no `network: blocked` line, and ONNX
Runtime's telemetry never starts. With the switches deliberately left off
(OPTBENCH_NETGUARD_NO_SWITCHES=1) the guard catches OpenVINO's telemetry and ORT's
uploader starts, so these tests fail when a switch stops working.

ORT's uploader lives in C++ (a bundled libcurl), out of the audit hook's sight: what shows
that it started is its store, `$XDG_CACHE_HOME/Microsoft/DeveloperTools/.onnxruntime`, made
when ORT initializes telemetry (the upload itself begins about 9 s into a session). Each
test gives the CLI a private HOME and XDG_CACHE_HOME, so nothing lands in the user's.
"""

from __future__ import annotations

import re
from importlib.util import find_spec
from pathlib import Path

import pytest
from faultkit import Cli

from optbench.run.netguard import NO_SWITCHES_ENV

pytestmark = pytest.mark.skipif(
    any(find_spec(m) is None for m in ("onnxruntime", "openvino", "nncf", "onnx")),
    reason="needs onnxruntime, openvino, nncf and onnx")

BLOCKED = "network: blocked"
ORT_STORE = Path("Microsoft", "DeveloperTools", ".onnxruntime")
OV_TELEMETRY = re.compile(r"network: blocked lookup of www\.google-analytics\.com:443 "
                          r"from openvino_telemetry")


def tiny_onnx(path: Path) -> Path:
    """A small conv net (1x8x8 in, 10 classes out) as an ONNX file: a bring-your-own model
    runs the same runtime paths as a card (ORT session and quantize_static, OpenVINO
    convert_model and NNCF) without a torch build."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(a.astype(np.float32), name) for name, a in (
        ("w", rng.standard_normal((4, 1, 3, 3))), ("b", np.zeros(4)),
        ("fw", rng.standard_normal((4 * 6 * 6, 10)) * 0.1), ("fb", np.zeros(10)))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def private_home(cli: Cli) -> tuple[dict[str, str], Path]:
    home = cli.cwd.parent / "home"
    home.mkdir()
    return {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}, home


def compare(cli: Cli, model: str, backends: str, *flags: str,
            env: dict[str, str]) -> dict[str, str]:
    """Run `optbench compare` to the end; every configuration ok; its worker logs by name."""
    result = cli.run("compare", "-m", model, "-b", backends, *flags, "--preset", "smoke",
                     "-o", "out", env=env, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    variants = 2 if "--int8" in flags else 1
    ok = re.findall(r"^ok\s+\S+ (\w+) (\w+) ", output, re.MULTILINE)
    assert len(ok) == variants * len(backends.split(",")), output
    logs = {p.name: p.read_text(errors="replace") for p in (cli.cwd / "out/logs").glob("*.log")}
    assert len(logs) == len(ok), sorted(logs)
    return logs


def assert_no_network(logs: dict[str, str], home: Path) -> None:
    blocked = [f"{name}: {line}" for name, text in logs.items()
               for line in text.splitlines() if BLOCKED in line]
    assert not blocked, "\n".join(blocked)
    assert not (home / ".cache" / ORT_STORE).exists(), "ONNX Runtime's telemetry started"
    assert not (home / "intel").exists(), "openvino_telemetry ran"


def test_ort_and_openvino_runs_open_no_network(cli: Cli) -> None:
    env, home = private_home(cli)
    model = tiny_onnx(cli.cwd / "tiny.onnx")
    logs = compare(cli, str(model), "ort,openvino", "--int8", env=env)
    assert any("openvino-int8" in name for name in logs)  # NNCF quantized under the guard
    assert_no_network(logs, home)


def test_without_the_switches_the_guard_catches_telemetry(cli: Cli) -> None:
    """The control: same runs, switches off. OpenVINO's telemetry is refused by the guard
    (and the run still succeeds); ORT's C++ uploader starts, which only its switch stops."""
    env, home = private_home(cli)
    model = tiny_onnx(cli.cwd / "tiny.onnx")
    logs = compare(cli, str(model), "ort,openvino", env={**env, NO_SWITCHES_ENV: "1",
                                                                     "CI": "false"})
    openvino = [text for name, text in logs.items() if "openvino" in name]
    assert openvino and OV_TELEMETRY.search(openvino[0]), openvino
    assert (home / ".cache" / ORT_STORE).is_dir()


@pytest.mark.slow
def test_mnist_cnn_runs_open_no_network(cli: Cli) -> None:
    """The card path (torch training, ONNX export, OpenVINO's PyTorch frontend): about 70 s
    with a cold cache on 2 cores."""
    env, home = private_home(cli)
    logs = compare(cli, "mnist-cnn", "ort,openvino", "--int8", env=env)
    assert_no_network(logs, home)
