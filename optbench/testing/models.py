"""fake-mlp: a seeded numpy MLP for tests; runs on the `fake` backend without torch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.models import ModelCard


def build(card: ModelCard, weights: str | None, cache: Path) -> ModelArtifact:
    rng = np.random.default_rng(int(card.options.get("seed", 0)))
    n_in = int(np.prod(card.input_shape))
    hidden = int(card.options.get("hidden", 32))
    layers = [
        rng.standard_normal((n_in, hidden)).astype(np.float32) / np.sqrt(n_in),
        rng.standard_normal((hidden, card.num_outputs)).astype(np.float32) / np.sqrt(hidden),
    ]
    digest = hashlib.sha256(b"".join(w.tobytes() for w in layers)).hexdigest()[:20]
    return ModelArtifact(
        name=card.name,
        format="numpy",
        module=layers,
        input_shape=card.input_shape,
        num_outputs=card.num_outputs,
        weights="random init (seeded), test model",
        weights_trained=False,
        digest=digest,
        reference_backend="fake",
        info={"parameters": sum(w.size for w in layers)},
    )
