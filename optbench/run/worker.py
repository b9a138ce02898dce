"""One RunSpec, start to finish, inside the child process the runner starts.

Five phases, each timed once: build_workload (model, its facts, the workload) ->
apply_variant (the variant's transforms, in stage order) -> load_backend (fp32 reference,
calibration, `backend.load`) -> measure (the loop under the meters) -> to_result. A
combination that cannot run here ends as a `skipped` RunResult with the reason. Everything
is returned as a RunResult; the parent owns the store.
Run as `python -m optbench.run.worker SPEC RESULT [--serve]`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from optbench.artifact import HF_CAUSAL_LM, ModelArtifact
from optbench.backends import BACKENDS
from optbench.backends.base import Backend, LoadContext, load_causal_lm
from optbench.backends.lm.base import CausalLM
from optbench.cache import atomic_path
from optbench.errors import OptbenchError, Unavailable
from optbench.measure.generation import GenerationLoop
from optbench.measure.loop import LoopOutput, MeasuredLoop, phase
from optbench.measure.presets import PRESETS, Preset
from optbench.measure.reference import reference_generation, reference_outputs
from optbench.measure.serving import traffic
from optbench.measure.serving.loop import ServingGenerationLoop, ServingLoop
from optbench.meters.base import Meter, MeterContext
from optbench.meters.select import select_meters
from optbench.models import ModelCard, build_model, resolve_model
from optbench.options import build_config
from optbench.results.schema import Metric, RunResult
from optbench.run import lifeline
from optbench.run.protocol import (
    CACHE_DIR_ENV,
    PHASE,
    STATUS_FD_ENV,
    TEMP_PREFIX,
    ServedTrials,
    status_sender,
)
from optbench.run.recipe import RunSpec
from optbench.transforms import TRANSFORMS
from optbench.transforms.base import TransformContext
from optbench.transforms.training import facts, metered
from optbench.workloads import WORKLOADS
from optbench.workloads.base import Workload

log = logging.getLogger("optbench.run.worker")


class Skip(Exception):
    """This combination cannot run here: the run is recorded `skipped` with the reason."""

    def __init__(self, reason: str, artifact: ModelArtifact | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.artifact = artifact


@dataclass
class Run:
    """What the phases of one run hand each other."""

    spec: RunSpec
    cache: Path
    on_phase: Callable[[str], None]
    backend_cls: type[Backend]
    preset: Preset
    meter_ctx: MeterContext
    phases: dict[str, float] = field(default_factory=dict)
    base: ModelArtifact | None = None
    card: ModelCard | None = None
    workload: Workload | None = None
    artifact: ModelArtifact | None = None

    def timed(self, key: str, label: str) -> Any:
        return phase(self.phases, key, label, self.on_phase)

    def meters(self) -> list[Meter]:
        spec = self.spec.measure
        return select_meters(spec.meters, self.meter_ctx, spec.estimate)


def execute(spec: RunSpec, cache: Path, on_phase: Callable[[str], None],
            served: ServedTrials | None = None) -> RunResult:
    """Measure one spec; unsupported combinations return a `skipped` result with the reason."""
    backend_cls = BACKENDS.get(spec.backend.name)
    available = backend_cls.availability()
    if available:
        available = backend_cls.device_support(spec.device)
    if available and spec.scenario is not None:
        available = traffic.availability()
    if not available:
        return RunResult("skipped", available.reason)
    config = build_config(backend_cls.Config, dict(spec.backend.options),
                          f"backends.{spec.backend.name}")
    run = Run(spec, cache, on_phase, backend_cls, PRESETS[spec.measure.preset],
              MeterContext(device=spec.device, cpu_tdp_w=spec.measure.cpu_tdp_w))
    try:
        build_workload(run)
        apply_variant(run)
        backend, inputs, reference = load_backend(run, config)
    except Skip as skip:
        return RunResult("skipped", skip.reason,
                         artifact=skip.artifact.describe() if skip.artifact else {})
    meters = run.meters()
    out, backend_info = measure(run, backend, meters, inputs, served)
    return to_result(run, out, backend_info, meters, inputs, reference)


def build_workload(run: Run) -> None:
    """The base model (with its parameter and MAC facts) and the workload that judges it."""
    spec = run.spec
    with run.timed("build_s", "building model"):
        base = build_model(spec.model.ref, spec.model.weights, run.cache,
                           trainer=metered(run.meters))
        card = resolve_model(spec.model.ref).card
        if base.format == "torch" and not {"macs", "macs_note"} & set(base.info):
            base = replace(base, info={**base.info, **facts(base.module, base.input_shape,
                                                            compress=False)})
        dataset = spec.workload.dataset or (card.dataset if card else "synthetic")
        eval_cap = spec.workload.eval_samples or run.preset.eval_cap
        workload = WORKLOADS.get(spec.workload.kind)(
            replace(spec.workload, dataset=dataset), base, eval_cap, run.cache / "workloads")
        workload.check()
    run.base, run.card, run.workload = base, card, workload


def apply_variant(run: Run) -> None:
    """The variant's transforms in order; then whether the backend runs the result."""
    spec, backend_cls = run.spec, run.backend_cls
    assert run.base is not None and run.workload is not None
    artifact = run.base
    with run.timed("transforms_s", "transforms"):
        tctx = TransformContext(backend_cls, spec.device, run.workload, run.cache,
                                card=run.card, meters=run.meters)
        for step in spec.variant.steps:
            transform_cls = TRANSFORMS.get(step.name)
            transform = transform_cls(build_config(
                transform_cls.Config, dict(step.options),
                f"variants.{spec.variant.name}.{step.name}"))
            supported = transform.supports(backend_cls, spec.device, artifact)
            if not supported:
                raise Skip(supported.reason, artifact)
            run.on_phase(f"transform {step.label()}")
            artifact = transform.apply(artifact, tctx)
        supported = backend_cls.supports(artifact.format, artifact.precision, spec.device)
        if not supported:
            raise Skip(supported.reason, artifact)
    run.artifact = artifact


def load_backend(run: Run, config: Any) -> tuple[Backend | CausalLM, Any, Any]:
    """The fp32 reference outputs, then the transformed model loaded: a language model
    (HF_CAUSAL_LM) by the backend's `lm_loader` into a CausalLM, anything else by a
    Backend instance's `load`."""
    spec, workload, artifact = run.spec, run.workload, run.artifact
    assert workload is not None and artifact is not None and run.base is not None
    with run.timed("reference_s", "loading data and fp32 reference"):
        inputs = workload.eval_inputs()
        if workload.generative:
            reference = reference_generation(run.base, inputs, workload.new_tokens, run.cache)
        else:
            reference = reference_outputs(run.base, inputs, run.cache)
        calibration = workload.calibration_inputs() if artifact.precision == "int8" else []
    label = f"loading into {run.backend_cls.name}" + (" (quantizing)" if calibration else "")
    ctx = LoadContext(run.cache / "backends", spec.batch_size, spec.device, calibration)
    with run.timed("load_s", label):
        if artifact.format == HF_CAUSAL_LM:
            try:
                return load_causal_lm(run.backend_cls, artifact, ctx, config), inputs, reference
            except Unavailable as exc:
                raise Skip(exc.reason, artifact) from None
        backend = run.backend_cls(config, spec.device)
        try:
            backend.load(artifact, ctx)
        except Unavailable as exc:
            backend.close()
            raise Skip(exc.reason, artifact) from None
    return backend, inputs, reference


def measure(run: Run, model: Backend | CausalLM, meters: list[Meter], inputs: Any,
            served: ServedTrials | None) -> tuple[LoopOutput, dict[str, Any]]:
    """The measured loop (a Backend, vision) or generation loop (a CausalLM, text) under
    the meters. Its own phases (warm-up, quality, latency, idle, trials) are timed inside
    the loop. A text run's backend description is the backend's name and the CausalLM's."""
    spec, workload = run.spec, run.workload
    assert workload is not None
    scenario = spec.scenario
    try:
        for meter in meters:
            meter.open()
        if isinstance(model, CausalLM):
            loop: MeasuredLoop = (
                GenerationLoop(model, spec.batch_size, workload.new_tokens, meters, run.preset,
                               on_phase=run.on_phase) if scenario is None else
                ServingGenerationLoop(model, scenario, spec.batch_size, workload.new_tokens,
                                      meters, run.preset, on_phase=run.on_phase))
            out = loop.run_text(inputs, workload.perplexity_windows, served)
            backend_info = {"name": run.backend_cls.name, **model.describe()}
        else:
            loop = (MeasuredLoop(model, spec.batch_size, meters, run.preset,
                                 on_phase=run.on_phase) if scenario is None else
                    ServingLoop(model, scenario, spec.batch_size, meters, run.preset,
                                on_phase=run.on_phase))
            out = loop.run(inputs, served)
            backend_info = model.describe()
    finally:
        for meter in meters:
            meter.close()
        model.close()
    run.phases.update(out.phases_s)
    return out, backend_info


def to_result(run: Run, out: LoopOutput, backend_info: dict[str, Any], meters: list[Meter],
              inputs: Any, reference: Any) -> RunResult:
    """Quality on the loop's outputs, and everything the run can tell, as a RunResult."""
    workload, artifact = run.workload, run.artifact
    assert workload is not None and artifact is not None
    quality = workload.quality(out.outputs, reference)
    return RunResult(
        status="ok",
        quality_metric=quality.primary,
        quality_higher_is_better=quality.higher_is_better,
        metrics=[*quality.metrics, Metric("eval_samples", float(len(inputs)),
                                          "prompts" if workload.generative else "samples")],
        latencies_s=out.latencies_s,
        device_latencies_s=out.device_latencies_s,
        trials=out.trials,
        artifact=artifact.describe(),
        backend=backend_info,
        details={
            "workload": workload.describe(),
            "meters": [m.describe() for m in meters],
            "warmup": out.warmup,
            "protocol": run.preset.name,
            "window_s": out.window_s,
            **({"generation": out.generation} if out.generation else {}),
            **({"serving": out.serving} if out.serving else {}),
        },
        phases_s={k: round(v, 3) for k, v in run.phases.items()},
        outcomes={name: [float(v) for v in values] for name, values in quality.outcomes.items()},
    )


def main(argv: list[str]) -> int:
    from optbench.run import netguard  # first: telemetry off, network guarded (netguard.py)

    netguard.install()
    serve = "--serve" in argv
    spec_path, result_path = (Path(a) for a in argv if a != "--serve")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    status_fd = os.environ.get(STATUS_FD_ENV)
    # the directory the parent made for this child (spec and result), removed if it dies
    own_dir = spec_path.parent if spec_path.parent.name.startswith(TEMP_PREFIX) else None
    lifeline.watch(int(status_fd) if status_fd else None, own_dir)
    spec = RunSpec.from_dict(json.loads(spec_path.read_text()))
    cache = Path(os.environ[CACHE_DIR_ENV])
    send = status_sender()
    served = ServedTrials(send) if serve else None
    try:
        result = execute(spec, cache, lambda label: send({PHASE: label}), served)
    except Unavailable as exc:
        result = RunResult("skipped", exc.reason)
    except OptbenchError as exc:
        result = RunResult("failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure becomes a recorded, explained run
        traceback.print_exc()
        result = RunResult("failed", f"{type(exc).__name__}: {exc}".strip())
    with atomic_path(result_path) as tmp:
        tmp.write_text(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
