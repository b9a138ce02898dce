"""One RunSpec, start to finish, inside the child process the runner starts.

build model -> apply the variant's transforms -> fp32 reference -> backend.load ->
measured loop under the meters -> quality. Everything the run can tell is returned as a
RunResult; the parent owns the store. Run as `python -m optbench.execute SPEC RESULT`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from optbench.backends import BACKENDS
from optbench.backends.base import LoadContext
from optbench.errors import OptbenchError, Unavailable
from optbench.generation import GenerationLoop
from optbench.loop import PRESETS, MeasuredLoop
from optbench.meters.base import MeterContext
from optbench.meters.select import select_meters
from optbench.models import build_model, resolve_model
from optbench.options import build_config
from optbench.recipe import RunSpec
from optbench.reference import reference_generation, reference_outputs
from optbench.results.schema import Metric, RunResult, Trial
from optbench.transforms import TRANSFORMS
from optbench.transforms.base import TransformContext
from optbench.transforms.training import facts
from optbench.workloads import WORKLOADS

log = logging.getLogger("optbench.execute")


class ServedTrials:
    """Serve mode: energy trials on request from the parent ("trial" / "finish" on stdin)."""

    def __init__(self, send: Callable[[dict[str, Any]], None], commands: Any = None) -> None:
        self._send = send
        self._commands = commands if commands is not None else sys.stdin

    def ready(self) -> None:
        self._send({"ready": True})

    def requests(self) -> Iterator[int]:
        index = 1
        for line in self._commands:
            command = line.strip()
            if command == "finish":
                return
            if command != "trial":
                raise ValueError(f"unknown command from the parent: {command!r}")
            yield index
            index += 1

    def send(self, trial: Trial) -> None:
        self._send({"trial": trial.to_dict()})


def execute(spec: RunSpec, cache: Path, on_phase: Callable[[str], None],
            served: ServedTrials | None = None) -> RunResult:
    """Measure one spec; unsupported combinations return a `skipped` result with the reason."""
    phases: dict[str, float] = {}
    backend_cls = BACKENDS.get(spec.backend.name)
    available = backend_cls.availability()
    if available:
        available = backend_cls.device_support(spec.device)
    if not available:
        return RunResult("skipped", available.reason)
    config = build_config(backend_cls.Config, dict(spec.backend.options),
                          f"backends.{spec.backend.name}")
    protocol = PRESETS[spec.measure.preset]

    on_phase("building model")
    t = time.monotonic()
    base = build_model(spec.model.ref, spec.model.weights, cache)
    card = resolve_model(spec.model.ref).card
    if base.format == "torch" and not {"macs", "macs_note"} & set(base.info):
        base = replace(base, info={**base.info, **facts(base.module, base.input_shape,
                                                        compress=False)})
    dataset = spec.workload.dataset or (card.dataset if card else "synthetic")
    eval_cap = spec.workload.eval_samples or protocol.eval_cap
    workload = WORKLOADS.get(spec.workload.kind)(
        replace(spec.workload, dataset=dataset), base, eval_cap, cache / "workloads"
    )
    workload.check()
    phases["build_s"] = time.monotonic() - t

    on_phase("transforms")
    t = time.monotonic()
    artifact = base
    meter_ctx = MeterContext(device=spec.device, cpu_tdp_w=spec.measure.cpu_tdp_w)
    tctx = TransformContext(
        backend_cls, spec.device, workload, cache, card=card,
        meters=lambda: select_meters(spec.measure.meters, meter_ctx, spec.measure.estimate))
    for step in spec.variant.steps:
        transform_cls = TRANSFORMS.get(step.name)
        transform = transform_cls(build_config(transform_cls.Config, dict(step.options),
                                               f"variants.{spec.variant.name}.{step.name}"))
        supported = transform.supports(backend_cls, spec.device, artifact)
        if not supported:
            return RunResult("skipped", supported.reason, artifact=artifact.describe())
        on_phase(f"transform {step.label()}")
        artifact = transform.apply(artifact, tctx)
    supported = backend_cls.supports(artifact.format, artifact.precision, spec.device)
    if not supported:
        return RunResult("skipped", supported.reason, artifact=artifact.describe())
    phases["transforms_s"] = time.monotonic() - t

    generative = getattr(workload, "generative", False)
    on_phase("loading data and fp32 reference")
    t = time.monotonic()
    inputs = workload.eval_inputs()
    if generative:
        reference = reference_generation(base, inputs, workload.new_tokens, cache)
    else:
        reference = reference_outputs(base, inputs, cache)
    calibration = workload.calibration_inputs() if artifact.precision == "int8" else []
    phases["reference_s"] = time.monotonic() - t

    on_phase(f"loading into {backend_cls.name}" + (" (quantizing)" if calibration else ""))
    t = time.monotonic()
    backend = backend_cls(config, spec.device)
    try:
        backend.load(artifact, LoadContext(cache / "backends", spec.batch_size, spec.device,
                                           calibration))
    except Unavailable as exc:
        backend.close()
        return RunResult("skipped", exc.reason, artifact=artifact.describe())
    phases["load_s"] = time.monotonic() - t

    meters = select_meters(spec.measure.meters, meter_ctx, spec.measure.estimate)
    try:
        for meter in meters:
            meter.open()
        if generative:
            loop: MeasuredLoop = GenerationLoop(backend.causal_lm(), spec.batch_size,
                                                workload.new_tokens, meters, protocol,
                                                on_phase=on_phase)
            out = loop.run_text(inputs, workload.perplexity_windows, served)
        else:
            loop = MeasuredLoop(backend, spec.batch_size, meters, protocol, on_phase=on_phase)
            out = loop.run(inputs, served)
        backend_info = backend.describe()
    finally:
        for meter in meters:
            meter.close()
        backend.close()
    phases.update(out.phases_s)

    quality = workload.quality(out.outputs, reference)
    return RunResult(
        status="ok",
        quality_metric=quality.primary,
        quality_higher_is_better=quality.higher_is_better,
        metrics=[*quality.metrics, Metric("eval_samples", float(len(inputs)),
                                          "prompts" if generative else "samples")],
        latencies_s=out.latencies_s,
        device_latencies_s=out.device_latencies_s,
        trials=out.trials,
        artifact=artifact.describe(),
        backend=backend_info,
        details={
            "workload": workload.describe(),
            "meters": [m.describe() for m in meters],
            "warmup": out.warmup,
            "protocol": protocol.name,
            "window_s": out.window_s,
            **({"generation": out.generation} if out.generation else {}),
        },
        phases_s={k: round(v, 3) for k, v in phases.items()},
    )


def _status_sender() -> Callable[[dict[str, Any]], None]:
    """Messages to the parent over the status pipe (logged only when run by hand)."""
    fd = os.environ.get("OPTBENCH_STATUS_FD")

    def send(message: dict[str, Any]) -> None:
        if "phase" in message:
            log.info("phase: %s", message["phase"])
        if fd:
            try:
                os.write(int(fd), (json.dumps(message) + "\n").encode())
            except OSError:
                pass

    return send


def main(argv: list[str]) -> int:
    serve = "--serve" in argv
    spec_path, result_path = (Path(a) for a in argv if a != "--serve")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = RunSpec.from_dict(json.loads(spec_path.read_text()))
    cache = Path(os.environ["OPTBENCH_CACHE_DIR"])
    send = _status_sender()
    served = ServedTrials(send) if serve else None
    try:
        result = execute(spec, cache, lambda phase: send({"phase": phase}), served)
    except Unavailable as exc:
        result = RunResult("skipped", exc.reason)
    except OptbenchError as exc:
        result = RunResult("failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure becomes a recorded, explained run
        traceback.print_exc()
        result = RunResult("failed", f"{type(exc).__name__}: {exc}".strip())
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict()))
    tmp.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
