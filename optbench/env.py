"""Environment fingerprint: what a result was measured on, stored with every run."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from optbench import SCHEMA_VERSION, __version__

PACKAGES = (
    "torch", "torchao", "onnxruntime", "onnxruntime-gpu", "onnx", "openvino", "nncf",
    "tensorrt", "vllm", "transformers", "optimum", "numpy", "nvidia-ml-py",
)
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
             "amx_int8", "avx_vnni", "hypervisor")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    from optbench.meters.estimate import cpu_model_name

    flags: set[str] = set()
    vendor = None
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "vendor_id" and vendor is None:
                vendor = value.strip()
    except OSError:
        pass
    return {
        "model": cpu_model_name(cpuinfo),
        "vendor": vendor,
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "flags": sorted(f for f in CPU_FLAGS if f in flags),
    }


def memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


@cache
def git_state() -> tuple[str | None, bool | None]:
    """(commit sha, dirty) of the optbench source tree when it is a git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None, None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=10, check=True).stdout
        return sha, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def fingerprint() -> dict[str, Any]:
    """Hardware and software facts that bear on a measurement (no volatile readings)."""
    from optbench.meters.inventory import gpu_inventory, powercap_zones

    return {
        "optbench_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "hostname": socket.gethostname(),
        "os": platform.system(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "in_container": Path("/.dockerenv").exists() or Path("/run/.containerenv").exists(),
        "cpu": cpu_info(),
        "memory_bytes": memory_bytes(),
        "gpus": gpu_inventory(),
        "powercap": powercap_zones(),
        "packages": package_versions(),
    }


def env_id(data: dict[str, Any]) -> str:
    """Stable id of a fingerprint: the same machine and software give the same id."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
