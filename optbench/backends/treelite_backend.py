"""treelite: a tree ensemble (random forest, LightGBM) compiled by TL2cgen into C and a
shared library with the machine's C compiler, then run by TL2cgen's predictor.

The library is built once per model digest and compiler settings, under optbench's cache
(a 100-tree MNIST forest is about 110,000 nodes: minutes of compiling on 2 cores the first
time, nothing after). Inputs become TL2cgen's DMatrix in `prepare`, outside timing.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.backends.base import (
    Availability,
    BackendConfig,
    LoadContext,
    file_bytes,
    module_availability,
)
from optbench.backends.classic_base import ClassicBackend
from optbench.errors import Unavailable
from optbench.models.classic import flat


@dataclass(frozen=True)
class TreeliteConfig(BackendConfig):
    threads: int = 1  # TL2cgen predictor threads
    optimize: Literal["O0", "O1", "O2", "O3"] = "O1"  # the C compiler's optimization level
    quantize: bool = True  # TL2cgen's threshold quantization: integer compares, same splits


def compiler() -> str | None:
    return shutil.which("gcc") or shutil.which("clang") or shutil.which("cc")


def treelite_model(estimator: Any) -> Any:
    """The estimator in treelite's form; Unavailable for one that is not a tree ensemble."""
    import treelite

    name = type(estimator).__name__
    if name in ("RandomForestClassifier", "ExtraTreesClassifier", "GradientBoostingClassifier"):
        return treelite.sklearn.import_model(estimator)
    if name == "LGBMClassifier":
        return treelite.frontend.from_lightgbm(estimator.booster_)
    raise Unavailable(f"treelite compiles tree ensembles; {name} is not one")


class TreeliteBackend(ClassicBackend):
    name = "treelite"
    Config = TreeliteConfig

    @classmethod
    def availability(cls) -> Availability:
        found = module_availability("treelite", "tl2cgen", extra="classic")
        if found and compiler() is None:
            return Availability.no("treelite's TL2cgen needs a C compiler (gcc, clang or cc) "
                                   "on PATH: apt-get install gcc")
        return found

    def load(self, artifact: ModelArtifact, ctx: LoadContext) -> None:
        import tl2cgen

        cfg = self.config
        self.classes = artifact.num_outputs
        tag = f"{cfg.optimize}{'-q' if cfg.quantize else ''}"
        self.library = ctx.cache_dir / "treelite" / f"{artifact.digest}-{tag}.so"
        self.compile_s = None
        if not self.library.is_file():
            model = treelite_model(artifact.module)
            start = time.perf_counter()
            self.library.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.library.parent) as tmp:
                built = Path(tmp) / "model.so"
                tl2cgen.export_lib(model, toolchain=Path(compiler() or "gcc").name,
                                   libpath=str(built), nthread=2, options=[f"-{cfg.optimize}"],
                                   params={"parallel_comp": 8,
                                           "quantize": 1 if cfg.quantize else 0})
                built.replace(self.library)  # whole or not at all
            self.compile_s = round(time.perf_counter() - start, 1)
        self.predictor = tl2cgen.Predictor(str(self.library), nthread=cfg.threads)
        self.to_numpy(self.infer(self.prepare(np.zeros((ctx.batch_size,
                                                        *artifact.input_shape), np.float32))))

    def prepare(self, batch: np.ndarray) -> Any:
        import tl2cgen

        return tl2cgen.DMatrix(flat(batch), dtype="float32")

    def infer(self, inputs: Any) -> Any:
        return self.predictor.predict(inputs)

    def to_numpy(self, outputs: Any) -> np.ndarray:
        out = np.asarray(outputs).reshape(len(outputs), -1)
        if out.shape[1] == 1 and self.classes == 2:  # binary: the positive class only
            out = np.hstack([1.0 - out, out])
        return out

    def describe(self) -> dict[str, Any]:
        import tl2cgen
        import treelite

        return {"name": self.name, "version": f"treelite {treelite.__version__}, tl2cgen "
                f"{tl2cgen.__version__}", "threads": self.config.threads,
                "library": self.library.name, "model_bytes": file_bytes(self.library),
                "compile_s": self.compile_s, "path": f"TL2cgen C, -{self.config.optimize}"
                + (", quantized thresholds" if self.config.quantize else "")}
