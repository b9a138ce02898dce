"""The Dockerfile cannot be built here (no Docker engine): check its structure instead."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def stages():
    parser = pytest.importorskip("dockerfile_parse").DockerfileParser(str(ROOT / "Dockerfile"))
    current, out = None, {}
    for item in parser.structure:
        if item["instruction"] == "FROM":
            current = item["value"].split(" AS ")[-1].strip()
            out[current] = [item]
        elif current:
            out[current].append(item)
    return out


def test_cpu_and_gpu_targets_with_the_optbench_entry_point():
    found = stages()
    assert set(found) == {"cpu", "gpu", "gpu-vllm"}
    for name, items in found.items():
        entry = [i["value"] for i in items if i["instruction"] == "ENTRYPOINT"]
        assert entry == ['["optbench"]'], name
        runs = " ".join(i["value"] for i in items if i["instruction"] == "RUN")
        assert "constraints" in runs, f"{name} must install through the constraints file"
    gpu = " ".join(i["value"] for i in found["gpu"])
    assert "tensorrt-cu13" in gpu and "onnxruntime-gpu" in gpu
    assert "docker/constraints-gpu.txt" in gpu
    assert "constraints-vllm.txt" in " ".join(i["value"] for i in found["gpu-vllm"])
    assert "download.pytorch.org/whl/cpu" in " ".join(i["value"] for i in found["cpu"])


def test_readme_documents_the_run_line():
    readme = (ROOT / "README.md").read_text()
    assert "docker build --target gpu" in readme and "--gpus all" in readme
    assert "/sys/class/powercap:/sys/class/powercap:ro" in readme


# The CUDA major each pinned GPU wheel requires, from its metadata on PyPI (`pip install
# --dry-run --report` of the wheel: torch's nvidia-*-cu13 requirements, onnxruntime-gpu's
# `cuda` extra nvidia-cuda-runtime~=13.0). A new pin must be added here, checked the same way.
CUDA_MAJOR_OF = {"torch==2.13.0": 13, "torch==2.14.0": 13, "onnxruntime-gpu==1.31.1": 13}


def pins(path):
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln]


def declared_major(path):
    import re

    found = re.search(r"^# cuda-major: (\d+)$", path.read_text(), re.M)
    assert found, f"{path.name} must say its CUDA major (# cuda-major: N)"
    return int(found.group(1))


@pytest.mark.parametrize("name", ["constraints-gpu.txt", "constraints-vllm.txt"])
def test_one_cuda_major_in_each_gpu_environment(name):
    import re

    path = ROOT / "docker" / name
    major = declared_major(path)
    for pin in pins(path):
        tagged = re.match(r"^[a-z0-9-]+-cu(\d+)(-[a-z]+)?==", pin)
        if tagged:
            assert int(tagged.group(1)) == major, pin
        if pin.split("==")[0] in ("torch", "onnxruntime-gpu"):
            assert CUDA_MAJOR_OF.get(pin) == major, f"{pin}: CUDA major not {major} (or unknown)"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for tag in re.findall(r"nvidia/cuda:(\d+)\.", dockerfile):
        assert int(tag) == major, f"base image CUDA {tag} against the pins' {major}"
    for cu in re.findall(r"tensorrt-cu(\d+)", dockerfile):
        assert int(cu) == major
    main = {p.split("==")[0]: p for p in pins(ROOT / "constraints.txt")}
    if name == "constraints-gpu.txt":  # the image's torch is the project's torch
        assert main["torch"] in pins(path)


def test_the_trt_extra_is_the_images_cuda_major():
    text = (ROOT / "pyproject.toml").read_text()
    assert "tensorrt-cu13" in text and declared_major(ROOT / "docker" /
                                                      "constraints-gpu.txt") == 13
