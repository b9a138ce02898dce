"""Recipe parsing: a YAML file or a mapping built from CLI flags -> a validated Recipe.

Every error names the recipe path of the bad value and, where it can, suggests the right
one; nothing runs before the whole recipe is valid.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from optbench.errors import RecipeError, UsageError, closest
from optbench.run.axes import expand_backends, expand_entries, expand_variants, parse_axes
from optbench.run.recipe import (
    DEVICES,
    BackendSpec,
    ExecutorSpec,
    MeasureSpec,
    ModelEntry,
    ModelSpec,
    Recipe,
    TransformStep,
    Variant,
    WorkloadSpec,
    freeze,
)

TOP_KEYS = ("name", "model", "models", "device", "workload", "backends", "variants", "sweep",
            "measure", "scenario", "executor", "machines", "axes")
EXECUTOR_KEYS = ("kind", "address")
MODEL_ENTRY_KEYS = ("name", "weights", "backends", "variants")
MACHINE_KEYS = ("name", "price_per_hour")
EXECUTORS = ("local", "ray")
# a machine kind is the name in a node's Ray resource `machine:NAME`
MACHINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
WORKLOAD_KEYS = ("kind", "dataset", "eval_samples", "calibration_samples", "train_samples",
                 "seed", "prompt_tokens", "new_tokens")
SWEEP_KEYS = ("batch_sizes",)
MEASURE_KEYS = ("preset", "meters", "timeout_s", "cpu_tdp_w", "estimate")
SCENARIO_KEYS = ("kind", "rates_per_s", "latency_bound_ms", "ttft_bound_ms", "tpot_bound_ms",
                 "duration_s", "batching", "samples_per_query", "cache", "search_steps", "seed")
BATCHING_KEYS = ("max_batch", "max_wait_ms")
CACHE_KEYS = ("size", "sizes", "repeat_skew")
# The largest batch a sweep or a dynamic batcher may use. Real inference batches stop well
# below it (MLPerf offline runs use 256-2048), a batch is padded to its size by repeating
# the evaluation samples (so beyond the sample count it only repeats inputs), and 4096
# ImageNet-sized inputs are already 2.5 GB of float32: a larger number is a typo, and was
# found only in the child, as a failed allocation of terabytes.
MAX_BATCH_SIZE = 4096
# The most evaluation samples (images, or prompts) a run may ask for: ImageNet's validation
# set, the largest evaluation set in common use, holds 50,000. A workload never reads more
# than its dataset holds, and synthetic inputs are all held in memory (50,000 x 3x224x224
# float32 is 30 GB), so asking for more could only be capped silently or fail late.
MAX_EVAL_SAMPLES = 50_000

log = logging.getLogger(__name__)


def load_recipe(path: str | Path, preset: str | None = None,
                placement: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Recipe:
    """Read and validate a YAML recipe file; `preset` (the `--preset` flag), when given,
    replaces the recipe's `measure.preset`, and is checked before the file is read;
    `placement` gives the recipe's `executor:`/`machines:` from flags over its own."""
    if preset is not None:
        preset = check_preset(preset, "--preset")
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"recipe {path} is a directory, not a YAML file")
    if not path.is_file():
        raise UsageError(f"recipe file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RecipeError(str(path), "not a text file (a recipe is UTF-8 YAML)") from None
    except OSError as exc:
        raise UsageError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(str(path), f"not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise RecipeError(str(path), f"a recipe must be a mapping of keys to values; this "
                          f"one is {kind}")
    data = dict(data)
    data.setdefault("name", path.stem)
    if preset is not None:
        measure = data.get("measure")
        if measure is None or isinstance(measure, Mapping):  # else parse_recipe says why
            data["measure"] = {**(measure or {}), "preset": preset}
    if placement is not None:
        entries = placement(data)
        for key in ("executor", "machines"):
            data.pop(key, None)
        data.update(entries)
    return parse_recipe(data)


def check_preset(preset: Any, path: str) -> str:
    """A measurement preset's name, or an error at `path` (a recipe path, or a flag) that
    lists the presets and suggests the closest."""
    from optbench.measure.presets import PRESETS

    name = str(preset)
    if name not in PRESETS:
        raise RecipeError(path, f"unknown preset {name!r}; choose one of "
                          f"{', '.join(PRESETS)}", closest(name, PRESETS))
    return name


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: where, and what."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(exc).split())


def parse_recipe(data: Mapping[str, Any]) -> Recipe:
    """Validate a recipe mapping (from YAML or the CLI) into a frozen Recipe."""
    _check_keys(data, TOP_KEYS, "recipe")
    name = _required_str(data, "name", "recipe")
    device = data.get("device", "auto")
    if device not in DEVICES:
        raise RecipeError("recipe.device", f"invalid device {device!r}; choose one of "
                          f"{', '.join(DEVICES)}", closest(str(device), DEVICES))
    variants = _parse_variants(data.get("variants"))
    if data.get("models") is not None:
        if data.get("model") is not None:
            raise RecipeError("recipe.models", "give `model:` (one) or `models:` (several), "
                              "not both")
        entries = _parse_model_entries(data["models"], data.get("backends"), variants)
        model = entries[0].model
        workload = _shared_workload(data.get("workload") or {}, entries)
        backends = entries[0].backends
    else:
        entries = ()
        model = _parse_model(data.get("model"))
        workload = _parse_workload(data.get("workload") or {}, model.ref)
        backends = _parse_backends(data.get("backends"))
    axes = parse_axes(data.get("axes"), variants,
                      tuple(b for e in entries for b in e.backends) or backends)
    if axes:
        variants, expanded = expand_variants(variants, axes)
        backends = expand_backends(backends, axes)
        entries = expand_entries(entries, axes, expanded)
    batch_sizes = _parse_sweep(data.get("sweep") or {})
    measure = _parse_measure(data.get("measure") or {})
    placement = {"executor": parse_executor(data.get("executor"), "recipe.executor"),
                 "machines": parse_machines(data.get("machines"), "recipe.machines"),
                 "machine_prices": parse_machine_prices(data.get("machines"),
                                                        "recipe.machines")}
    if placement["machines"] and placement["executor"].kind == "local":
        raise RecipeError("recipe.machines", "machine kinds are chosen among a cluster's "
                          "nodes: give executor: {kind: ray, address: HOST:PORT} as well")
    if data.get("scenario") is None:
        _note_padding(batch_sizes, workload, measure, model.ref, "recipe.sweep.batch_sizes")
        return Recipe(name, model, workload, backends, variants, batch_sizes, measure, device,
                      models=entries, axes=axes, **placement)
    if "batch_sizes" in (data.get("sweep") or {}):
        raise RecipeError("recipe.sweep.batch_sizes", "a serving scenario batches dynamically: "
                          "give scenario.batching.max_batch instead")
    scenario, batching, cache_sizes = _parse_scenario(data["scenario"])
    _note_padding([b for b, _ in batching], workload, measure, model.ref,
                  "recipe.scenario.batching.max_batch")
    return Recipe(name, model, workload, backends, variants, batch_sizes, measure, device,
                  scenario, batching, cache_sizes, models=entries, axes=axes, **placement)


def parse_executor(data: Any, path: str) -> ExecutorSpec:
    """`executor:` (a mapping, or just its kind) -> ExecutorSpec."""
    if data is None:
        return ExecutorSpec()
    if isinstance(data, str):
        data = {"kind": data}
    if not isinstance(data, Mapping):
        raise RecipeError(path, "give a mapping such as {kind: ray, address: HOST:PORT}")
    _check_keys(data, EXECUTOR_KEYS, path)
    kind = data.get("kind", "local")
    if kind not in EXECUTORS:
        raise RecipeError(f"{path}.kind", f"unknown executor {kind!r}; choose one of "
                          f"{', '.join(EXECUTORS)}", closest(str(kind), EXECUTORS))
    address = data.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise RecipeError(f"{path}.address", "give the Ray cluster's address as HOST:PORT "
                          "(or auto)")
    if address is not None and kind == "local":
        raise RecipeError(f"{path}.address", "the local executor takes no address")
    return ExecutorSpec(kind, address.strip() if address else None)


def parse_machines(data: Any, path: str) -> tuple[str, ...]:
    """`machines:` (a list, or a comma-separated string as --machines gives it) -> names."""
    return tuple(name for name, _ in machine_entries(data, path))


def parse_machine_prices(data: Any, path: str) -> tuple[tuple[str, float], ...]:
    """The `price_per_hour` of each machine kind that `machines:` prices, e.g.
    `[{name: h100, price_per_hour: 4.1}, cpu]` -> (("h100", 4.1),)."""
    return tuple((name, price) for name, price in machine_entries(data, path)
                 if price is not None)


def machine_entries(data: Any, path: str) -> list[tuple[str, float | None]]:
    """`machines:` entries: a kind's name, or {name: KIND, price_per_hour: PRICE}."""
    if data is None:
        return []
    items = [n.strip() for n in data.split(",")] if isinstance(data, str) else data
    if not isinstance(items, list) or not items:
        raise RecipeError(path, "give a list of machine kinds, such as [h100, cpu]")
    entries = []
    for index, item in enumerate(items):
        price = None
        if isinstance(item, Mapping):
            _check_keys(item, MACHINE_KEYS, f"{path}[{index}]")
            price = item.get("price_per_hour")
            if price is not None and (isinstance(price, bool) or not isinstance(
                    price, (int, float)) or not math.isfinite(price) or price < 0):
                raise RecipeError(f"{path}[{index}].price_per_hour", "give the machine's "
                                  f"price per hour as a number >= 0, got {price!r}")
            item = item.get("name")
        if not isinstance(item, str) or not MACHINE_NAME.match(item):
            raise RecipeError(path, f"invalid machine kind {item!r}: letters, digits, "
                              "'_', '.', '-' (the K of a node's Ray resource machine:K)")
        entries.append((item, None if price is None else float(price)))
    if len({name for name, _ in entries}) != len(entries):
        raise RecipeError(path, "a machine kind is listed twice")
    return entries


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
    if not isinstance(data, Mapping):
        raise RecipeError(path, f"expected a mapping, got {data!r}")
    for key in data:
        if key not in allowed:
            raise RecipeError(
                f"{path}.{key}", f"unknown key; valid keys: {', '.join(allowed)}",
                closest(str(key), allowed),
            )


def _required_str(data: Mapping[str, Any], key: str, path: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(f"{path}.{key}", "required, and must be a non-empty string")
    return value.strip()


def _parse_model_entries(data: Any, backends: Any,
                         variants: tuple[Variant, ...]) -> tuple[ModelEntry, ...]:
    """`models:`, a list of model refs or {name, weights, backends, variants}: each with
    its own backends (else the recipe's) and a subset of the recipe's variants by name
    (else all), so a torch CNN and a random forest each run where they can."""
    if not isinstance(data, (list, tuple)) or not data:
        raise RecipeError("recipe.models", "expected a list of models (names, or mappings "
                          "with name, backends, variants)")
    shared = None if backends is None else _parse_backends(backends)
    names = [v.name for v in variants]
    entries: list[ModelEntry] = []
    for i, item in enumerate(data):
        path = f"recipe.models[{i}]"
        item = {"name": item} if isinstance(item, str) else item
        _check_keys(item, MODEL_ENTRY_KEYS, path)
        model = _parse_model({k: v for k, v in item.items() if k in ("name", "weights")},
                             path)
        own = (shared if item.get("backends") is None
               else _parse_backends(item["backends"], f"{path}.backends"))
        if own is None:
            raise RecipeError(f"{path}.backends", "required here, or `backends:` for all "
                              "models")
        chosen = item.get("variants")
        if chosen is not None:
            if isinstance(chosen, str):
                chosen = _comma_items(chosen, f"{path}.variants")
            if not isinstance(chosen, (list, tuple)) or not chosen:
                raise RecipeError(f"{path}.variants", "expected a list of the recipe's "
                                  "variant names")
            for v in chosen:
                if str(v) not in names:
                    raise RecipeError(f"{path}.variants", f"no variant {v!r} in "
                                      f"recipe.variants ({', '.join(names)})",
                                      closest(str(v), names))
        entry = ModelEntry(model, own, tuple(str(v) for v in chosen or ()))
        if any(e.model == model for e in entries):
            raise RecipeError(path, f"model {model.ref!r} listed twice")
        entries.append(entry)
    return tuple(entries)


def _shared_workload(data: Mapping[str, Any], entries: tuple[ModelEntry, ...]) -> WorkloadSpec:
    """The one workload every model of `models:` is judged by (each on its card's dataset
    unless `workload.dataset` names one); models of different kinds cannot share it."""
    specs = [_parse_workload(data, e.model.ref) for e in entries]
    for entry, spec in zip(entries, specs):
        if spec.kind != specs[0].kind:
            raise RecipeError("recipe.models", f"{entries[0].model.ref} is a {specs[0].kind} "
                              f"model and {entry.model.ref} a {spec.kind} one: a recipe's "
                              "models share one workload kind")
    return specs[0]


def _parse_model(data: Any, path: str = "recipe.model") -> ModelSpec:
    from optbench.models import check_model, resolve_model

    if isinstance(data, Mapping):
        _check_keys(data, ("name", "weights"), path)
        ref = _required_str(data, "name", path)
        weights = data.get("weights")
        if weights is not None and not Path(str(weights)).expanduser().is_file():
            raise RecipeError(f"{path}.weights", f"weights file not found: {weights}")
        spec = ModelSpec(ref, str(Path(str(weights)).expanduser().resolve()) if weights else None)
    elif isinstance(data, str) and data.strip():
        spec = ModelSpec(data.strip())
    else:
        raise RecipeError(path, "required: a model card name, a model file, or "
                          "{name: ..., weights: ...}")
    resolved = resolve_model(spec.ref)
    check_model(resolved, spec.weights)  # a bad .onnx or Hugging Face directory: here, not per run
    return ModelSpec(resolved.ref, spec.weights)


def _parse_workload(data: Mapping[str, Any], model_ref: str) -> WorkloadSpec:
    from optbench.models import default_workload
    from optbench.options import coerce
    from optbench.workloads import WORKLOADS

    _check_keys(data, WORKLOAD_KEYS, "recipe.workload")
    kind = WORKLOADS.canonical(str(data.get("kind") or default_workload(model_ref)))
    dataset = data.get("dataset")
    if dataset is not None:
        dataset = coerce(dataset, str, "recipe.workload.dataset")
        WORKLOADS.get(kind).validate_dataset(dataset, "recipe.workload.dataset")
    eval_samples = _positive(data, "eval_samples", "recipe.workload", None)
    if eval_samples is not None:
        _check_eval_samples(eval_samples, kind, dataset, model_ref)
    spec = WorkloadSpec(
        kind=kind,
        dataset=dataset,
        eval_samples=eval_samples,
        calibration_samples=_positive(data, "calibration_samples", "recipe.workload", 128),
        train_samples=_positive(data, "train_samples", "recipe.workload", None),
        seed=coerce(data.get("seed", 0), int, "recipe.workload.seed"),
        prompt_tokens=_positive(data, "prompt_tokens", "recipe.workload", None),
        new_tokens=_positive(data, "new_tokens", "recipe.workload", None),
    )
    return spec


def _eval_dataset(dataset: str | None, model_ref: str) -> str:
    """The dataset a run evaluates on: the recipe's, else the model card's (as the worker
    decides)."""
    from optbench.models import resolve_model

    card = resolve_model(model_ref).card
    return dataset or (card.dataset if card else None) or "synthetic"


def _eval_limit(kind: str, dataset: str | None, model_ref: str) -> int | None:
    from optbench.workloads import WORKLOADS

    return WORKLOADS.get(kind).eval_limit(_eval_dataset(dataset, model_ref))


def _check_eval_samples(count: int, kind: str, dataset: str | None, model_ref: str) -> None:
    """More samples than a stated bound, or than the dataset holds, is refused here: the
    workload would otherwise evaluate on fewer while the recipe kept the number asked."""
    path = "recipe.workload.eval_samples"
    if count > MAX_EVAL_SAMPLES:
        raise RecipeError(path, f"{count} is more than the {MAX_EVAL_SAMPLES:,} optbench "
                          "evaluates on (ImageNet's validation set is 50,000 images)")
    limit = _eval_limit(kind, dataset, model_ref)
    if limit is not None and count > limit:
        raise RecipeError(path, f"{count} is more than the {limit:,} evaluation samples "
                          f"dataset {_eval_dataset(dataset, model_ref)} holds")


def _note_padding(batch_sizes: Any, workload: WorkloadSpec, measure: MeasureSpec,
                  model_ref: str, path: str) -> None:
    """A warning (not an error) for a batch larger than the evaluation samples, where their
    count is known here: each batch then repeats samples to fill itself."""
    from optbench.measure.presets import PRESETS
    from optbench.workloads import WORKLOADS

    if WORKLOADS.get(workload.kind).generative:  # prompts are counted their own way
        return
    counts = [workload.eval_samples or PRESETS[measure.preset].eval_cap,
              _eval_limit(workload.kind, workload.dataset, model_ref)]
    known = [c for c in counts if c is not None]
    if not known:
        return
    samples = min(known)
    over = [b for b in batch_sizes if b > samples]
    if over:
        log.warning("%s: batch size %s is larger than the %d evaluation samples; each batch "
                    "repeats samples to fill itself (set workload.eval_samples or "
                    "--eval-samples for more)", path, ", ".join(map(str, over)), samples)


def _positive(data: Mapping[str, Any], key: str, path: str, default: int | None) -> int | None:
    from optbench.options import coerce

    if data.get(key) is None:
        return default
    value = coerce(data[key], int, f"{path}.{key}")
    if value <= 0:
        raise RecipeError(f"{path}.{key}", f"must be a positive integer, got {value}")
    return value


def _one_key(item: Any, path: str) -> tuple[str, Mapping[str, Any]]:
    """A list item written as `name` or `{name: {options}}`."""
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Mapping) and len(item) == 1:
        (name, options), = item.items()
        options = options or {}
        if not isinstance(options, Mapping):
            raise RecipeError(f"{path}.{name}", f"options must be a mapping, got {options!r}")
        return str(name), options
    raise RecipeError(path, f"expected a name or {{name: {{options}}}}, got {item!r}")


def _parse_backends(data: Any, path: str = "recipe.backends") -> tuple[BackendSpec, ...]:
    from optbench.backends import BACKENDS
    from optbench.options import build_config, config_to_dict

    if not data:
        raise RecipeError(path, "required: a list of backend names")
    if isinstance(data, str):
        data = _comma_items(data, path)
    if isinstance(data, Mapping):
        data = [{k: v} for k, v in data.items()]
    specs: list[BackendSpec] = []
    for i, item in enumerate(data):
        name, options = _one_key(item, f"{path}[{i}]")
        canonical = BACKENDS.canonical(name)
        config = build_config(BACKENDS.get(canonical).Config, options, f"{path}.{name}")
        # Store only what the user set, so defaults changing later do not alter spec keys.
        explicit = {k: v for k, v in config_to_dict(config).items() if k in options}
        spec = BackendSpec(canonical, freeze(explicit))
        if spec in specs:
            raise RecipeError(f"{path}[{i}]", f"backend '{canonical}' listed twice")
        specs.append(spec)
    return tuple(specs)


def _parse_variants(data: Any) -> tuple[Variant, ...]:
    from optbench.options import build_config, config_to_dict
    from optbench.transforms import TRANSFORMS

    if data is None:
        return (Variant("fp32"),)
    if isinstance(data, (list, tuple)):
        data = {str(v): ([] if str(v) == "fp32" else [v]) for v in data}
    if not isinstance(data, Mapping) or not data:
        raise RecipeError("recipe.variants", "expected a mapping of variant name -> steps")
    variants = []
    for vname, steps in data.items():
        path = f"recipe.variants.{vname}"
        if steps is None:
            steps = []
        if isinstance(steps, str):
            steps = [s.strip() for s in steps.split("+") if s.strip()]
        if not isinstance(steps, (list, tuple)):
            raise RecipeError(path, f"expected a list of transform steps, got {steps!r}")
        parsed = []
        for j, item in enumerate(steps):
            name, options = _one_key(item, f"{path}[{j}]")
            canonical = TRANSFORMS.canonical(name)
            config = build_config(TRANSFORMS.get(canonical).Config, options, f"{path}.{name}")
            explicit = {k: v for k, v in config_to_dict(config).items() if k in options}
            parsed.append(TransformStep(canonical, freeze(explicit)))
        stages = [TRANSFORMS.get(s.name).stage for s in parsed]
        if stages != sorted(stages):
            from optbench.transforms.base import Stage

            order = " < ".join(stage.name.lower() for stage in Stage)
            raise RecipeError(path, f"steps must be ordered by stage ({order}): "
                              + ", ".join(f"{s.name}={st.name.lower()}"
                                          for s, st in zip(parsed, stages)))
        variants.append(Variant(str(vname), tuple(parsed)))
    return tuple(variants)


def _parse_sweep(data: Mapping[str, Any]) -> tuple[int, ...]:
    from optbench.options import coerce

    _check_keys(data, SWEEP_KEYS, "recipe.sweep")
    path = "recipe.sweep.batch_sizes"
    sizes = coerce(_comma_items(data.get("batch_sizes", [1]), path), tuple[int, ...], path)
    if not sizes or any(b <= 0 for b in sizes):
        raise RecipeError(path, f"need positive integers, got {list(sizes)}")
    _check_batch_bound(sizes, path)
    if len(set(sizes)) != len(sizes):
        raise RecipeError("recipe.sweep.batch_sizes", f"duplicate batch size in {list(sizes)}")
    return tuple(sizes)


def _parse_measure(data: Mapping[str, Any]) -> MeasureSpec:
    from optbench.meters import METERS
    from optbench.options import coerce

    _check_keys(data, MEASURE_KEYS, "recipe.measure")
    preset = check_preset(data.get("preset", "quick"), "recipe.measure.preset")
    meters = coerce(_comma_items(data.get("meters", ["auto"]), "recipe.measure.meters"),
                    tuple[str, ...], "recipe.measure.meters")
    meters = tuple(m if m == "auto" else METERS.canonical(m) for m in meters)
    # A NaN or infinite timeout would disable the watchdog: finite and positive only.
    timeout_s = _positive_number(data.get("timeout_s", 1800.0), "recipe.measure.timeout_s")
    tdp = data.get("cpu_tdp_w")
    if tdp is not None:
        tdp = _positive_number(tdp, "recipe.measure.cpu_tdp_w")
    estimate = coerce(data.get("estimate", True), bool, "recipe.measure.estimate")
    return MeasureSpec(preset, meters, timeout_s, tdp, estimate)


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _positive_number(value: Any, path: str, integer: bool = False,
                     zero_ok: bool = False) -> Any:
    """A finite number > 0 (>= 0 with `zero_ok`): NaN compares false with everything, so
    `< 0` alone would let it (and infinity) through to disable a bound or a timeout."""
    from optbench.options import coerce

    number = coerce(value, int if integer else float, path)
    if not (math.isfinite(number) and (number > 0 or (zero_ok and number == 0))):
        raise RecipeError(path, f"must be {'>= 0' if zero_ok else 'positive'} and finite, "
                          f"got {value}")
    return number


def _comma_items(value: Any, path: str) -> Any:
    """A comma-separated string as its items, an empty item refused (`1,,2` is a typo, not
    1,2); anything else as it is."""
    if not isinstance(value, str):
        return value
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise RecipeError(path, f"empty item in {value!r}; separate values by single commas")
    return items


def _check_batch_bound(sizes: Any, path: str) -> None:
    too_big = [b for b in sizes if b > MAX_BATCH_SIZE]
    if too_big:
        raise RecipeError(path, f"batch size {too_big[0]} is above the limit of "
                          f"{MAX_BATCH_SIZE}")


def _parse_scenario(data: Any) -> tuple[Any, tuple[tuple[int, float], ...], tuple[int, ...]]:
    """`scenario:` -> (Scenario, batching policies, cache sizes); the last two are swept."""
    from optbench.measure.serving.scenario import SCENARIOS, SWEEP, Scenario

    if isinstance(data, str):
        data = {"kind": data}
    path = "recipe.scenario"
    _check_keys(data, SCENARIO_KEYS, path)
    kind = str(data.get("kind", "server"))
    if kind not in SCENARIOS:
        raise RecipeError(f"{path}.kind", f"unknown scenario {kind!r}; choose one of "
                          f"{', '.join(SCENARIOS)}", closest(kind, SCENARIOS))
    rates = data.get("rates_per_s")
    sweep = False
    if kind != "server":
        if rates is not None:
            raise RecipeError(f"{path}.rates_per_s", f"only the server scenario takes rates; "
                              f"{kind} sets its own pace")
        rates_t: tuple[float, ...] = ()
    elif rates is None or rates == SWEEP:
        sweep, rates_t = True, ()
    else:
        rates = _comma_items(rates, f"{path}.rates_per_s")
        rates_t = tuple(_positive_number(r, f"{path}.rates_per_s") for r in _listed(rates))
        if not rates_t:
            raise RecipeError(f"{path}.rates_per_s", "need at least one rate, or 'sweep'")
        if len(set(rates_t)) != len(rates_t):
            raise RecipeError(f"{path}.rates_per_s", f"duplicate rate in {list(rates_t)}")
    bounds = {key: (None if data.get(key) is None
                    else _positive_number(data[key], f"{path}.{key}"))
              for key in ("latency_bound_ms", "ttft_bound_ms", "tpot_bound_ms")}
    duration = _positive_number(data.get("duration_s", 10.0), f"{path}.duration_s")
    batching = _parse_batching(data.get("batching") or {}, f"{path}.batching")
    cache = data.get("cache") or {}
    _check_keys(cache, CACHE_KEYS, f"{path}.cache")
    sizes = [0]
    if cache.get("size") is not None or cache.get("sizes") is not None:
        given = _listed(cache.get("sizes", cache.get("size")))
        sizes = sorted({0, *(_positive_number(v, f"{path}.cache.size", integer=True)
                             for v in given)})
    skew = cache.get("repeat_skew")
    if skew is not None:
        skew = _positive_number(skew, f"{path}.cache.repeat_skew")
    elif len(sizes) > 1:
        raise RecipeError(f"{path}.cache.repeat_skew", "a cache needs a request stream with "
                          "repeats: set repeat_skew (Zipf exponent, e.g. 1.0)")
    scenario = Scenario(
        kind=kind, rates_per_s=rates_t, sweep=sweep, duration_s=duration,
        samples_per_query=_positive_number(data.get("samples_per_query", 8),
                                           f"{path}.samples_per_query", integer=True),
        repeat_skew=skew,
        search_steps=_positive_number(data.get("search_steps", 3), f"{path}.search_steps",
                                      integer=True, zero_ok=True),
        seed=_positive_number(data.get("seed", 0), f"{path}.seed", integer=True, zero_ok=True),
        **bounds)
    return scenario, batching, tuple(sizes)


def _parse_batching(data: Any, path: str) -> tuple[tuple[int, float], ...]:
    """{max_batch: 8 | [1, 8], max_wait_ms: 2 | [0, 2]} (the product), or a list of such."""
    items = data if isinstance(data, (list, tuple)) else [data]
    policies: list[tuple[int, float]] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(data, (list, tuple)) else path
        _check_keys(item, BATCHING_KEYS, where)
        batches = [_positive_number(b, f"{where}.max_batch", integer=True)
                   for b in _listed(_comma_items(item.get("max_batch", 1), f"{where}.max_batch"))]
        _check_batch_bound(batches, f"{where}.max_batch")
        waits = [_positive_number(w, f"{where}.max_wait_ms", zero_ok=True)
                 for w in _listed(_comma_items(item.get("max_wait_ms", 0.0),
                                               f"{where}.max_wait_ms"))]
        for b in batches:
            for w in waits:
                if (b, float(w)) not in policies:
                    policies.append((b, float(w)))
    if not policies:
        raise RecipeError(path, "need at least one batching policy")
    return tuple(policies)
