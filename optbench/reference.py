"""The fp32 reference outputs every variant's fidelity is judged against (cached)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.backends import BACKENDS
from optbench.backends.base import LoadContext
from optbench.loop import make_batches

log = logging.getLogger(__name__)
REFERENCE_BATCH = 32


def reference_outputs(base: ModelArtifact, inputs: np.ndarray, cache: Path) -> np.ndarray:
    """Outputs of the untransformed model at fp32 on the CPU by its reference backend."""
    key = hashlib.sha256(
        f"{base.digest}|{base.reference_backend}|{inputs.shape}".encode() + inputs.tobytes()
    ).hexdigest()[:20]
    path = cache / "reference" / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    backend = BACKENDS.get(base.reference_backend)(None, "cpu")
    batch_size = min(REFERENCE_BATCH, len(inputs))
    log.info("computing fp32 reference outputs with %s on %d samples",
             base.reference_backend, len(inputs))
    backend.load(base, LoadContext(cache_dir=cache / "backends", batch_size=batch_size))
    try:
        batches, n = make_batches(inputs, batch_size)
        outputs = np.concatenate([backend.to_numpy(backend.infer(backend.prepare(b)))
                                  for b in batches])[:n]
    finally:
        backend.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, outputs)
    tmp.replace(path)
    return outputs
