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


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


POWERCAP_ROOT = "/sys/class/powercap"


def powercap_root() -> Path:
    return Path(os.environ.get("OPTBENCH_POWERCAP_ROOT", POWERCAP_ROOT))


def powercap_zones(root: Path | None = None) -> dict[str, Any]:
    """Powercap zones and their names, or the reason there are none."""
    root = root or powercap_root()
    if not root.is_dir():
        return {"root": str(root), "zones": [], "reason": f"{root} does not exist (no RAPL "
                "interface: a VM or a kernel without intel_rapl/powercap)"}
    zones = {}
    for zone in sorted(root.iterdir()):
        name_file = zone / "name"
        if name_file.is_file():
            try:
                zones[zone.name] = name_file.read_text().strip()
            except OSError as exc:
                zones[zone.name] = f"unreadable: {exc.strerror}"
    return {"root": str(root), "zones": zones}


def gpu_inventory(nvml: Any = None) -> dict[str, Any]:
    """NVIDIA GPUs seen by NVML (static facts only), or the reason none are seen."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return {"devices": [], "reason": "nvidia-ml-py not installed"}
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        return {"devices": [], "reason": f"NVML unavailable: {exc}"}
    try:
        devices = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            device: dict[str, Any] = {
                "index": i,
                "name": _text(nvml.nvmlDeviceGetName(handle)),
                "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
            }
            for key, call in (
                ("memory_bytes", lambda h: nvml.nvmlDeviceGetMemoryInfo(h).total),
                ("power_limit_w", lambda h: nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000),
                ("mig_mode", lambda h: nvml.nvmlDeviceGetMigMode(h)[0]),
            ):
                try:
                    device[key] = call(handle)
                except nvml.NVMLError as exc:
                    device[key] = f"unavailable: {exc}"
            devices.append(device)
        return {"devices": devices, "driver": _text(nvml.nvmlSystemGetDriverVersion())}
    finally:
        nvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
