"""The fp32 reference outputs every variant's fidelity is judged against (cached)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.backends import BACKENDS
from optbench.backends.base import LoadContext, load_causal_lm
from optbench.cache import atomic_path
from optbench.measure.loop import make_batches

log = logging.getLogger(__name__)
REFERENCE_BATCH = 32


def reference_outputs(base: ModelArtifact, inputs: np.ndarray, cache: Path) -> np.ndarray:
    """Outputs of the untransformed model at fp32 on the CPU by its reference backend."""
    key = hashlib.sha256(
        f"{base.digest}|{base.reference_backend}|{inputs.shape}".encode() + inputs.tobytes()
    ).hexdigest()[:20]

    def compute() -> np.ndarray:
        backend = BACKENDS.get(base.reference_backend)(None, "cpu")
        batch_size = min(REFERENCE_BATCH, len(inputs))
        log.info("computing fp32 reference outputs with %s on %d samples",
                 base.reference_backend, len(inputs))
        backend.load(base, LoadContext(cache_dir=cache / "backends", batch_size=batch_size))
        try:
            batches, n = make_batches(inputs, batch_size)
            return np.concatenate([backend.to_numpy(backend.infer(backend.prepare(b)))
                                   for b in batches])[:n]
        finally:
            backend.close()

    return cached_array(cache / "reference" / f"{key}.npy", compute)


def cached_array(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """`compute()` once, kept at `path` (written atomically); read back afterwards."""
    if path.is_file():
        return np.load(path)
    array = compute()
    with atomic_path(path) as tmp:
        np.save(tmp, array)
    return array


def reference_generation(base: ModelArtifact, prompts: np.ndarray, new_tokens: int,
                         cache: Path) -> np.ndarray:
    """Greedy tokens of the untransformed language model at fp32 on the CPU by its
    reference backend's text loader (`lm_loader`: eager torch for every Hugging Face model),
    for the same prompts: what every variant's generations are compared with (cached)."""
    key = hashlib.sha256(
        f"{base.digest}|generate|{new_tokens}|{prompts.shape}".encode() + prompts.tobytes()
    ).hexdigest()[:20]

    def compute() -> np.ndarray:
        log.info("computing fp32 reference generations with %s on %d prompts",
                 base.reference_backend, len(prompts))
        lm = load_causal_lm(BACKENDS.get(base.reference_backend), base, LoadContext(
            cache_dir=cache / "backends", batch_size=min(REFERENCE_BATCH, len(prompts))))
        try:
            return np.concatenate([
                lm.generate(prompts[i:i + REFERENCE_BATCH], new_tokens, lambda: None).tokens
                for i in range(0, len(prompts), REFERENCE_BATCH)])
        finally:
            lm.close()

    return cached_array(cache / "reference" / f"{key}.npy", compute)
