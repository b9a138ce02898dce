"""What energy sources this machine has, read without measuring (for env and `ls meters`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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
