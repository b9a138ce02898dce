"""A numpy backend for optbench's own tests: deterministic outputs, injectable faults.

It runs `numpy`-format artifacts (the hidden `fake-mlp` card). Its int8 path rounds the
weights to 8-bit symmetric levels, so variants change outputs measurably. Faults let the
runner's isolation be tested: an exception, a segfault, a hang, or a SIGKILL as the
kernel's out-of-memory killer would send. `latency_s` makes every call take that long:
spinning while holding the GIL (`wait="spin"`), or sleeping (`wait="sleep"`), which
releases the GIL as a real runtime does while it computes, so serving tests can run
LoadGen, the batcher and the model side by side as in production.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.backends.base import Availability, Backend, BackendConfig, LoadContext


@dataclass(frozen=True)
class FakeConfig(BackendConfig):
    latency_s: float = 0.0
    wait: Literal["spin", "sleep"] = "spin"
    fault: Literal["none", "raise", "crash", "hang", "oom"] = "none"
    fault_at: Literal["load", "infer"] = "load"


# A sleep overshoots by the timer's slack and the wake-up (on a 2-vCPU VM: 0.16 ms median,
# 0.3 ms at p95 for a 10 ms sleep): sleep until this long before the deadline, then spin
# the rest (holding the GIL that long), so a call lasts latency_s to a few microseconds.
SPIN_TAIL_S = 3e-4


def wait_until(deadline: float, sleep: bool) -> None:
    """Return at `deadline` (perf_counter seconds), sleeping for most of it if `sleep`."""
    if sleep and (left := deadline - time.perf_counter() - SPIN_TAIL_S) > 0:
        time.sleep(left)
    while time.perf_counter() < deadline:
        pass


def quantize_symmetric(w: np.ndarray) -> np.ndarray:
    scale = np.abs(w).max() / 127.0 or 1.0
    return (np.round(w / scale).clip(-127, 127) * scale).astype(np.float32)


class FakeBackend(Backend):
    name = "fake"
    Config = FakeConfig
    formats = ("numpy",)
    precisions = {"cpu": ("fp32", "int8")}

    @classmethod
    def availability(cls) -> Availability:
        return Availability.yes()

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        if self.config.fault_at == "load":
            self._fault()
        layers = list(artifact.module)
        if artifact.precision == "int8":
            layers = [quantize_symmetric(w) for w in layers]
        self.layers = layers
        self.precision = artifact.precision

    def infer(self, inputs: Any) -> Any:
        if self.config.fault_at == "infer":
            self._fault()
        # the call lasts latency_s from its start, its own compute included
        deadline = time.perf_counter() + self.config.latency_s
        h = inputs.reshape(len(inputs), -1)
        for i, w in enumerate(self.layers):
            h = h @ w
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
        if self.config.latency_s:
            wait_until(deadline, self.config.wait == "sleep")
        return h

    def _fault(self) -> None:
        fault = self.config.fault
        if fault == "raise":
            raise RuntimeError("injected failure")
        if fault == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if fault == "hang":
            time.sleep(10**6)
        if fault == "oom":
            os.kill(os.getpid(), signal.SIGKILL)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "precision": self.precision,
                "runtime": f"numpy {np.__version__}"}
