"""Fit a model again from scratch under a training-energy budget.

The same family and hyper-parameters as the card (classic models), or the card's own
architecture freshly initialised (a torch card with a `student` builder, at width 1), on
the workload's training split, under the run's meters; the budget is checked every
`check_every` units of work and stops the fit once spent, keeping what was fitted so far:
- forest: trees, grown `check_every` at a time (warm start): fewer trees;
- gbt (LightGBM): boosting rounds (a callback ends training): fewer rounds;
- logreg: lbfgs iterations (warm start, `check_every` at a time): an earlier iterate;
- knn: nothing to train; the budget cannot bind (the record says so);
- a CNN: Adam steps of cross-entropy over `epochs` (the card's, by default): fewer steps.
So every family can be trained under the same budgets (recipes/shallow-vs-deep.yaml).
The result replaces the card's fit: its training record is the re-fit's alone, which is
what making it cost. Cached by digest like every trained artifact.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from optbench.artifact import CLASSIC, ModelArtifact
from optbench.errors import Availability
from optbench.models.classic import flat, make_estimator, size_facts
from optbench.transforms.base import Stage, Transform, TransformConfig, TransformContext
from optbench.transforms.training import (
    MeteredSession,
    TrainingRecord,
    facts,
    float_torch_support,
    train,
    train_once,
    training_split,
)

DEFAULT_EPOCHS = 3  # a torch card's, unless its options say `epochs`


@dataclass(frozen=True)
class RefitConfig(TransformConfig):
    energy_budget_j: float | None = None
    check_every: int = 5  # trees, rounds, iterations or optimizer steps between reads
    # torch cards: the training run (epochs None: the card's own)
    epochs: float | None = None
    lr: float = 2e-3
    batch_size: int = 64
    seed: int = 0


class Budget:
    """`spent()`: whether the budget is used up (reads the meters)."""

    def __init__(self, session: MeteredSession, budget_j: float | None,
                 record: TrainingRecord) -> None:
        self.session, self.budget_j, self.record = session, budget_j, record
        record.budget_j = budget_j

    def spent(self, done: int, unit: str) -> bool:
        if self.budget_j is None:
            return False
        used = self.session.spent_j()
        if used is not None and used >= self.budget_j:
            self.record.budget_exhausted = True
            self.record.notes.append(f"energy budget {self.budget_j:g} J spent after "
                                     f"{done} {unit}")
            return True
        return False


def fit_forest(params: dict[str, Any], x: np.ndarray, y: np.ndarray, budget: Budget,
               every: int) -> tuple[Any, int, int]:
    planned = int(params.get("n_estimators", 100))
    model = make_estimator("forest", {**params, "warm_start": True, "n_estimators": 0})
    grown = 0
    while grown < planned:
        grown = min(planned, grown + every)
        model.set_params(n_estimators=grown)
        model.fit(x, y)
        if budget.spent(grown, "trees"):
            break
    return model, grown, planned


def fit_boosted(params: dict[str, Any], x: np.ndarray, y: np.ndarray, budget: Budget,
                every: int) -> tuple[Any, int, int]:
    import lightgbm

    planned = int(params.get("n_estimators", 100))

    def check(env: Any) -> None:
        done = env.iteration + 1
        if done % every == 0 and done < planned and budget.spent(done, "rounds"):
            raise lightgbm.callback.EarlyStopException(env.iteration,
                                                       env.evaluation_result_list)

    model = make_estimator("gbt", params)
    model.fit(x, y, callbacks=[check])
    return model, int(model.booster_.current_iteration()), planned


def fit_linear(params: dict[str, Any], x: np.ndarray, y: np.ndarray, budget: Budget,
               every: int) -> tuple[Any, int, int]:
    from sklearn.exceptions import ConvergenceWarning

    planned = int(params.get("max_iter", 100))
    model = make_estimator("logreg", {**params, "warm_start": True, "max_iter": every})
    done = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a chunk rarely converges
        while done < planned:
            model.fit(x, y)
            step = int(np.max(model.n_iter_))
            done += step
            if step < every or budget.spent(done, "iterations"):
                break  # converged, or the budget is spent
    return model, done, planned


class Refit(Transform):
    name = "refit"
    stage = Stage.ARCHITECTURE
    Config = RefitConfig

    def supports(self, backend: type, device: str, artifact: ModelArtifact) -> Availability:
        if artifact.format == CLASSIC:
            return backend.supports(artifact.format, artifact.precision, device)
        return float_torch_support(backend, device, artifact, "refit (a fresh fit)")

    def apply(self, artifact: ModelArtifact, ctx: TransformContext) -> ModelArtifact:
        cfg = self.config
        if artifact.format != CLASSIC:
            return self._train_torch(artifact, ctx)
        derived = artifact.derive(f"refit(budget={cfg.energy_budget_j},every={cfg.check_every})")
        stored, directory = train_once(
            ctx, derived.digest, "refit",
            lambda session, record, out: self._make(artifact, ctx, session, record, out),
            data="refit")
        with open(directory / "model.pkl", "rb") as f:
            model = pickle.load(f)  # noqa: S301 - our own cache, written by _make
        info = {**artifact.info, **stored["facts"], "training": [stored["record"]]}
        return replace(derived, module=model, info=info)

    def _make(self, artifact: ModelArtifact, ctx: TransformContext, session: MeteredSession,
              record: TrainingRecord, out: Path) -> dict[str, Any]:
        cfg = self.config
        family = artifact.info.get("family", "")
        params = {k: v for k, v in artifact.module.get_params().items()
                  if k not in ("random_state", "warm_start", "verbose")}
        if family == "gbt":
            params = {k: v for k, v in params.items() if v is not None and k not in (
                "objective", "class_weight", "importance_type")}
        x, y = training_split(ctx, "refit")
        rows = flat(x)
        budget = Budget(session, cfg.energy_budget_j, record)
        every = max(1, cfg.check_every)
        if family == "forest":
            model, done, planned = fit_forest(params, rows, y, budget, every)
        elif family == "gbt":
            model, done, planned = fit_boosted(params, rows, y, budget, every)
        elif family == "logreg":
            model, done, planned = fit_linear(params, rows, y, budget, every)
        else:
            model, done, planned = make_estimator(family, params).fit(rows, y), 1, 1
            if cfg.energy_budget_j is not None:
                record.notes.append(f"{family} has nothing to train: the budget cannot bind")
        record.steps = done
        record.epochs_completed = round(done / planned, 3)
        with open(out / "model.pkl", "wb") as f:
            pickle.dump(model, f)
        return size_facts(family, model)

    def _train_torch(self, artifact: ModelArtifact, ctx: TransformContext) -> ModelArtifact:
        """The card's architecture from fresh weights, trained under the budget."""
        import torch
        import torch.nn.functional as F

        from optbench.transforms.distill import student_builder

        cfg = self.config
        card, build = student_builder(ctx, None)
        epochs = cfg.epochs or float(card.options.get("epochs", DEFAULT_EPOCHS))
        derived = artifact.derive(f"refit(budget={cfg.energy_budget_j},every={cfg.check_every},"
                                  f"epochs={epochs:g},lr={cfg.lr:g},bs={cfg.batch_size},"
                                  f"seed={cfg.seed})")

        def make(session: MeteredSession, record: TrainingRecord, out: Path) -> dict[str, Any]:
            x, y = training_split(ctx, "refit")
            torch.manual_seed(cfg.seed)
            module = build(card, 1.0).train()
            train(module, x, y, lambda m, xb, yb: F.cross_entropy(m(xb), yb), epochs=epochs,
                  batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, session=session,
                  budget_j=cfg.energy_budget_j, record=record,
                  check_every=max(1, cfg.check_every))
            module.eval()
            torch.save(module.state_dict(), out / "state.pt")
            return facts(module, artifact.input_shape)

        stored, directory = train_once(ctx, derived.digest, "refit", make, data="refit")
        module = build(card, 1.0)
        module.load_state_dict(torch.load(directory / "state.pt", weights_only=True))
        base_only = {*stored["facts"], "trained", "train_time_s"}  # the card's own training
        info = {**{k: v for k, v in artifact.info.items() if k not in base_only},
                **stored["facts"], "training": [stored["record"]]}
        return replace(derived, module=module.eval(), weights_trained=True, info=info)
