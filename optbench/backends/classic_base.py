"""What the runtimes of classic models share: the `sklearn` artifact format, CPU fp32,
and float32 rows of flattened pixels as their input."""

from __future__ import annotations

from typing import Any

import numpy as np

from optbench.artifact import CLASSIC
from optbench.backends.base import Backend
from optbench.models.classic import flat


class ClassicBackend(Backend):
    formats = (CLASSIC,)
    precisions = {"cpu": ("fp32",)}

    def prepare(self, batch: np.ndarray) -> Any:
        return flat(batch)
