"""Classic-ML models (no deep learning) trained here on the same split as the CNNs.

A card names its `family` and hyper-parameters in `options:` (cards/mnist-*.yaml and
cards/digits-*.yaml): logreg (scikit-learn LogisticRegression), forest
(RandomForestClassifier), gbt (LightGBM's LGBMClassifier) and knn (KNeighborsClassifier).
Each is fitted on its card dataset's training digits (MNIST: 4,000, flattened to 784
features; scikit-learn's digits: 1,497 of 64), by the trainer the run passes (under its meters: the
fit's energy is a training record on the artifact, like a training transform's), and
cached by a digest of its family, hyper-parameters, data and library version. The
artifact's format is `sklearn`: `module` is the fitted estimator; backends/sklearn.py runs
its own predict_proba, the reference every other runtime is judged against.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from optbench.artifact import CLASSIC, ModelArtifact
from optbench.cache import atomic_path
from optbench.errors import RecipeError, Unavailable
from optbench.models import ModelCard

# (what is trained, the fitting itself) -> (its result, the training record as a dict):
# the worker's runs it under the run's meters (transforms/training.py `metered`)
Trainer = Callable[[str, Callable[[], Any]], tuple[Any, dict[str, Any]]]

log = logging.getLogger(__name__)

FAMILIES = ("logreg", "forest", "gbt", "knn")
SEED = 0


def make_estimator(family: str, params: dict[str, Any]) -> Any:
    """The unfitted estimator of `family` with the card's hyper-parameters."""
    if family == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(random_state=SEED, **params)
    if family == "forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=SEED, **params)
    if family == "gbt":
        try:
            from lightgbm import LGBMClassifier
        except ImportError:
            raise Unavailable("gbt needs LightGBM: pip install 'optbench[classic]'") from None
        return LGBMClassifier(random_state=SEED, verbose=-1, **params)
    if family == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(**params)
    raise RecipeError("card.options.family", f"unknown family {family!r}; choose one of "
                      f"{', '.join(FAMILIES)}")


def library_version(family: str) -> str:
    if family == "gbt":
        import lightgbm

        return f"lightgbm {lightgbm.__version__}"
    import sklearn

    return f"scikit-learn {sklearn.__version__}"


def flat(x: np.ndarray) -> np.ndarray:
    """Images (n, 1, 28, 28) -> float32 rows (n, 784), as every classic runtime takes them."""
    return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)


def size_facts(family: str, model: Any) -> dict[str, Any]:
    """What the fitted model holds: its numbers, and for trees their nodes."""
    if family == "logreg":
        return {"parameters": int(model.coef_.size + model.intercept_.size)}
    if family == "forest":
        nodes = sum(int(t.tree_.node_count) for t in model.estimators_)
        return {"parameters": nodes, "trees": len(model.estimators_), "tree_nodes": nodes,
                "macs_note": "trees compare, they do not multiply"}
    if family == "gbt":
        dump = model.booster_.dump_model()
        leaves = sum(int(t["num_leaves"]) for t in dump["tree_info"])
        return {"parameters": 2 * leaves - len(dump["tree_info"]),
                "trees": len(dump["tree_info"]), "tree_nodes": 2 * leaves - len(dump["tree_info"]),
                "macs_note": "trees compare, they do not multiply"}
    return {"parameters": int(model._fit_X.size),
            "macs_note": "one distance per stored digit and query"}


def fit(family: str, params: dict[str, Any], x: np.ndarray, y: np.ndarray) -> Any:
    return make_estimator(family, params).fit(flat(x), y)


def unmetered(transform: str, work: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Fitting outside a run (no meters): its time only, and says so."""
    start = time.monotonic()
    result = work()
    return result, {"transform": transform, "seconds": round(time.monotonic() - start, 3),
                    "steps": 1, "epochs_completed": 1.0, "energy_j": None,
                    "energy_method": "unavailable", "channels": {}, "budget_j": None,
                    "budget_exhausted": False, "cached": False,
                    "notes": ["fitted outside a run: no meters"]}


def build(card: ModelCard, weights: str | None, cache: Path,
          trainer: Trainer | None = None) -> ModelArtifact:
    """The card's fitted estimator (from the cache when it was fitted before), fitted by
    `trainer` (under the run's meters) when it is not."""
    from optbench.workloads.datasets import labelled

    if weights:
        raise RecipeError("recipe.model.weights", f"{card.name} is fitted here from its "
                          "card's hyper-parameters; it takes no weights file")
    options = dict(card.options)
    family = str(options.pop("family", ""))
    if family not in FAMILIES:
        raise RecipeError(f"{card.path}:options.family", f"give one of {', '.join(FAMILIES)}")
    split = labelled(card.dataset, cache / "workloads")
    data = hashlib.sha256(split.train_x.tobytes() + split.train_y.tobytes()).hexdigest()[:12]
    recipe = {"family": family, "params": options, "seed": SEED, "data": data,
              "library": library_version(family)}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:20]
    entry = cache / "models" / f"classic-{card.name}-{digest}"
    stored = entry / "record.json"  # written last: the mark of a complete entry
    if stored.is_file() and trainer is not None and json.loads(stored.read_text())[
            "record"].get("energy_method") == "unavailable":
        stored.unlink()  # fitted outside a run: fit again under the run's meters
    if stored.is_file():
        saved = json.loads(stored.read_text())
        with open(entry / "model.pkl", "rb") as f:
            model = pickle.load(f)  # noqa: S301 - our own cache, written below
        record = {**saved["record"], "cached": True}
    else:
        log.info("fitting %s (%s) on %d real digits (cached afterwards)", card.name,
                 family, len(split.train_x))
        model, record = (trainer or unmetered)(f"fit {family}", lambda: fit(
            family, options, split.train_x, split.train_y))
        entry.mkdir(parents=True, exist_ok=True)
        with atomic_path(entry / "model.pkl") as tmp:
            tmp.write_bytes(pickle.dumps(model))
        with atomic_path(stored) as tmp:
            tmp.write_text(json.dumps({"record": record, "recipe": recipe}, default=str))
    described = ", ".join(f"{k}={v}" for k, v in options.items())
    return ModelArtifact(
        name=card.name, format=CLASSIC, module=model, input_shape=card.input_shape,
        num_outputs=card.num_outputs,
        weights=f"fitted here on the {card.dataset} train split ({family}: {described}; "
                f"{recipe['library']})",
        weights_trained=True, digest=digest, reference_backend="sklearn",
        mean=card.mean, std=card.std,
        info={"family": family, **size_facts(family, model), "training": [record]})
