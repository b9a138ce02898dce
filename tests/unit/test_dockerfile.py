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
    assert set(found) == {"cpu", "gpu"}
    for name, items in found.items():
        entry = [i["value"] for i in items if i["instruction"] == "ENTRYPOINT"]
        assert entry == ['["optbench"]'], name
        runs = " ".join(i["value"] for i in items if i["instruction"] == "RUN")
        assert "constraints" in runs, f"{name} must install through the constraints file"
    gpu = " ".join(i["value"] for i in found["gpu"])
    assert "tensorrt" in gpu and "onnxruntime-gpu" in gpu and "nvidia/cuda" in gpu
    assert "download.pytorch.org/whl/cpu" in " ".join(i["value"] for i in found["cpu"])


def test_readme_documents_the_run_line():
    readme = (ROOT / "README.md").read_text()
    assert "docker build --target gpu" in readme and "--gpus all" in readme
    assert "/sys/class/powercap:/sys/class/powercap:ro" in readme
