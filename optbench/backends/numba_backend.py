"""numba: a classic model's inference as `@njit` kernels over flat arrays
(backends/numba_kernels.py), compiled before the measured phases and cached on disk
(NUMBA_CACHE_DIR, under optbench's cache unless set), single-threaded.

`load` turns the fitted estimator into arrays (a linear model's weights, a forest's or a
LightGBM model's trees as node arrays, kNN's stored rows) and runs the kernel once on a
batch of zeros, so compilation (or loading the cached machine code) is never timed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.backends.base import Availability, BackendConfig, LoadContext, module_availability
from optbench.backends.classic_base import ClassicBackend


@dataclass(frozen=True)
class NumbaConfig(BackendConfig):
    pass


class NumbaBackend(ClassicBackend):
    name = "numba"
    Config = NumbaConfig

    @classmethod
    def availability(cls) -> Availability:
        return module_availability("numba", extra="classic")

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        # read once, when numba is first imported: the cache must be set before that
        os.environ.setdefault("NUMBA_CACHE_DIR", str(ctx.cache_dir / "numba"))
        from optbench.backends.numba_kernels import compile_model

        self.compiled = compile_model(artifact.module)
        start = time.perf_counter()
        self.compiled(np.zeros((max(1, ctx.batch_size), int(np.prod(artifact.input_shape))),
                               dtype=np.float32))
        self.compile_s = round(time.perf_counter() - start, 3)

    def infer(self, inputs: Any) -> Any:
        return self.compiled(inputs)

    def describe(self) -> dict[str, Any]:
        import numba

        return {"name": self.name, "version": f"numba {numba.__version__}",
                "kernel": self.compiled.kind, "threads": 1,
                "compile_or_cache_load_s": self.compile_s,
                "model_bytes": self.compiled.nbytes, "path": f"njit {self.compiled.kind}"}
