"""Recipe types: frozen dataclasses a recipe is parsed into (`run/parse.py`).

A Recipe names one model (or several, `models:`, each with its backends and variants) and
a workload, the backends, the variants (named transform pipelines) and the sweep;
`Recipe.expand()` yields one RunSpec per point, and `RunSpec.key()` identifies a
configuration across runs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from optbench.measure.serving.scenario import Scenario
from optbench.results.identity import spec_key

Options = tuple[tuple[str, Any], ...]
DEVICES = ("auto", "cpu", "cuda")


def freeze(options: Mapping[str, Any] | None) -> Options:
    """A hashable, order-independent form of an options mapping."""
    return tuple(sorted((options or {}).items()))


@dataclass(frozen=True)
class TransformStep:
    name: str
    options: Options = ()

    def label(self) -> str:
        if not self.options:
            return self.name
        args = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.name}({args})"


@dataclass(frozen=True)
class Variant:
    """A named, ordered pipeline of transforms; the empty pipeline is the fp32 baseline."""

    name: str
    steps: tuple[TransformStep, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """The model to measure: a card name, a model file or directory, or a Hugging Face id.

    `weights` optionally points at a weights file for a card model (e.g. torchvision's
    ResNet-50 checkpoint); None lets the card look in its usual places.
    """

    ref: str
    weights: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    """One model of a recipe's `models:` list: the backends it runs on and the names of
    the recipe's variants it takes (empty: all)."""

    model: ModelSpec
    backends: tuple[BackendSpec, ...]
    variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class Axis:
    """A searched option (`axes:` in a recipe): every backend, or every transform step,
    named `target` is measured with each of `values` for its `option`. The grid (`run`)
    and the search (`search`) share the expanded configurations; the search also reads
    the axis as one dimension of its space."""

    kind: str  # "backend" | "transform"
    target: str
    option: str
    values: tuple[Any, ...]

    @property
    def name(self) -> str:
        return f"{self.target}.{self.option}"


@dataclass(frozen=True)
class BackendSpec:
    name: str
    options: Options = ()

    def label(self) -> str:
        if not self.options:
            return self.name
        return f"{self.name}({','.join(f'{k}={v}' for k, v in self.options)})"


@dataclass(frozen=True)
class WorkloadSpec:
    """Which data a run is judged on.

    `kind` None takes the model's (vision, or text for language models). `dataset` is
    "mnist", "synthetic", "imagefolder:<path>" (vision) or "pydocs", "textfile:<path>"
    (text); None takes the model card's default. `eval_samples` (images, or prompts) None
    takes the preset's cap. `prompt_tokens` and `new_tokens` shape text requests.
    """

    kind: str = "vision"
    dataset: str | None = None
    eval_samples: int | None = None
    calibration_samples: int = 128
    train_samples: int | None = None
    seed: int = 0
    prompt_tokens: int | None = None
    new_tokens: int | None = None


@dataclass(frozen=True)
class MeasureSpec:
    preset: str = "quick"
    meters: tuple[str, ...] = ("auto",)
    timeout_s: float = 1800.0
    cpu_tdp_w: float | None = None
    estimate: bool = True


@dataclass(frozen=True)
class RunSpec:
    """One point of a sweep: model x workload x backend x variant x batch size x measure."""

    recipe: str
    model: ModelSpec
    workload: WorkloadSpec
    backend: BackendSpec
    variant: Variant
    batch_size: int
    measure: MeasureSpec
    device: str = "cpu"
    scenario: Scenario | None = None  # a serving scenario; batch_size is its max_batch
    machine: str | None = None  # the machine kind it runs on (an executor's); None: here
    # a `models:` recipe's name: its models share fronts where judged on the same samples
    # (report/analysis.py merge_models); not part of the key (results/identity.py)
    front: str | None = None

    def key(self) -> str:
        """Stable hash of everything that changes the measurement: not the recipe name,
        not the timeout (`results.identity.NOT_IDENTITY`)."""
        return spec_key(self.to_dict())

    def label(self) -> str:
        model = Path(self.model.ref).name if "/" in self.model.ref else self.model.ref
        where = f" @{self.machine}" if self.machine else ""
        if self.scenario is not None:
            return (f"{model} {self.backend.label()} {self.variant.name} "
                    f"{self.scenario.label(self.batch_size)}{where}")
        return f"{model} {self.backend.label()} {self.variant.name} bs{self.batch_size}{where}"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        def opts(pairs: Any) -> Options:
            return tuple((k, _tuplify(v)) for k, v in pairs)

        variant = data["variant"]
        return cls(
            recipe=data["recipe"],
            model=ModelSpec(**data["model"]),
            workload=WorkloadSpec(**data["workload"]),
            backend=BackendSpec(data["backend"]["name"], opts(data["backend"]["options"])),
            variant=Variant(
                variant["name"],
                tuple(TransformStep(s["name"], opts(s["options"])) for s in variant["steps"]),
            ),
            batch_size=data["batch_size"],
            measure=MeasureSpec(**{**data["measure"], "meters": tuple(data["measure"]["meters"])}),
            device=data["device"],
            scenario=(None if data.get("scenario") is None else Scenario(**{
                **data["scenario"], "rates_per_s": tuple(data["scenario"]["rates_per_s"])})),
            machine=data.get("machine"),
            front=data.get("front"),
        )


def _tuplify(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class ExecutorSpec:
    """Where a recipe's RunSpecs run: `local` (child processes here) or `ray` (tasks on
    the nodes of the Ray cluster at `address`; run/ray_executor.py)."""

    kind: str = "local"
    address: str | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    model: ModelSpec
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    backends: tuple[BackendSpec, ...] = ()
    variants: tuple[Variant, ...] = (Variant("fp32"),)
    batch_sizes: tuple[int, ...] = (1,)
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    device: str = "auto"
    scenario: Scenario | None = None
    # Serving: the batching policies (max_batch, max_wait_ms) and cache sizes swept.
    batching: tuple[tuple[int, float], ...] = ()
    cache_sizes: tuple[int, ...] = (0,)
    # Every configuration on every listed machine kind (an executor's); () with `local`.
    machines: tuple[str, ...] = ()
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    # (kind, price per hour) for the kinds the recipe prices: the fleet report's cost
    machine_prices: tuple[tuple[str, float], ...] = ()
    # several models (`models:`); () when the recipe names one (`model`, `backends`)
    models: tuple[ModelEntry, ...] = ()
    # the searched options that expanded backends and variants (already in them)
    axes: tuple[Axis, ...] = ()

    def entries(self) -> tuple[ModelEntry, ...]:
        return self.models or (ModelEntry(self.model, self.backends),)

    def expand(self, device: str) -> list[RunSpec]:
        """One RunSpec per model x its backends x its variants x batch size (serving:
        x batching policy x cache size), on the resolved `device`."""
        def spec(model: ModelSpec, backend: BackendSpec, variant: Variant, batch_size: int,
                 scenario: Scenario | None = None) -> RunSpec:
            return RunSpec(recipe=self.name, model=model, workload=self.workload,
                           backend=backend, variant=variant, batch_size=batch_size,
                           measure=self.measure, device=device, scenario=scenario,
                           front=self.name if self.models else None)

        specs: list[RunSpec] = []
        for entry in self.entries():
            variants = [v for v in self.variants if not entry.variants or v.name in entry.variants]
            m = entry.model
            if self.scenario is None:
                specs += [spec(m, b, v, n) for b, v, n in itertools.product(
                    entry.backends, variants, self.batch_sizes)]
            else:
                specs += [spec(m, b, v, max_batch,
                               replace(self.scenario, max_wait_ms=wait, cache_size=cache))
                          for b, v, (max_batch, wait), cache in itertools.product(
                              entry.backends, variants, self.batching, self.cache_sizes)]
        return specs

    def to_yaml(self) -> str:
        """The recipe as YAML that `optbench run` accepts (what --print-recipe shows)."""
        def model_yaml(model: ModelSpec) -> Any:
            return {"name": model.ref, "weights": model.weights} if model.weights else model.ref

        def backends_yaml(backends: tuple[BackendSpec, ...]) -> list[Any]:
            return [{b.name: dict(b.options)} if b.options else b.name for b in backends]

        def entry_yaml(entry: ModelEntry) -> dict[str, Any]:
            named = model_yaml(entry.model)
            out = named if isinstance(named, dict) else {"name": named}
            out["backends"] = backends_yaml(entry.backends)
            if entry.variants:
                out["variants"] = list(entry.variants)
            return out

        models: dict[str, Any] = (
            {"models": [entry_yaml(e) for e in self.models]} if self.models else
            {"model": model_yaml(self.model)})
        data: dict[str, Any] = {
            "name": self.name,
            **models,
            "device": self.device,
            "workload": {k: v for k, v in asdict(self.workload).items() if v is not None},
            **({} if self.models else {"backends": backends_yaml(self.backends)}),
            "variants": {
                v.name: [{s.name: dict(s.options)} if s.options else s.name for s in v.steps]
                for v in self.variants
            },
            **({"sweep": {"batch_sizes": list(self.batch_sizes)}} if self.scenario is None
               else {"scenario": self._scenario_yaml()}),
            "measure": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in asdict(self.measure).items()
                if v is not None
            },
        }
        if self.executor.kind != "local":
            data["executor"] = {k: v for k, v in asdict(self.executor).items() if v is not None}
        if self.machines:
            prices = dict(self.machine_prices)
            data["machines"] = [{"name": m, "price_per_hour": prices[m]} if m in prices else m
                                for m in self.machines]
        return yaml.safe_dump(data, sort_keys=False)

    def _scenario_yaml(self) -> dict[str, Any]:
        s = self.scenario
        assert s is not None
        data: dict[str, Any] = {"kind": s.kind}
        if s.kind == "server":
            data["rates_per_s"] = "sweep" if s.sweep else list(s.rates_per_s)
        for key in ("latency_bound_ms", "ttft_bound_ms", "tpot_bound_ms"):
            if getattr(s, key) is not None:
                data[key] = getattr(s, key)
        data["duration_s"] = s.duration_s
        data["batching"] = [{"max_batch": b, "max_wait_ms": w} for b, w in self.batching]
        if s.kind == "multi-stream":
            data["samples_per_query"] = s.samples_per_query
        if s.repeat_skew is not None or any(self.cache_sizes):
            data["cache"] = {"sizes": list(self.cache_sizes), "repeat_skew": s.repeat_skew}
        if s.searches:
            data["search_steps"] = s.search_steps
        if s.seed:
            data["seed"] = s.seed
        return data
