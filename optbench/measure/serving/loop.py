"""The serving loops: the shared protocol's warm-up, quality and closed-loop latency
passes, then, in place of the closed-loop energy trials, the idle baseline and one
metered LoadGen test per offered load (`ServingRun`).

The closed-loop pass at `max_batch` gives the capacity the rate sweep is scaled to and the
service-time hint LoadGen's stream scenarios pre-generate queries with.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from optbench.backends.lm.base import Engine
from optbench.measure.generation import GenerationLoop
from optbench.measure.loop import LoopOutput, MeasuredLoop
from optbench.measure.serving.continuous import ContinuousServedModel
from optbench.measure.serving.executors import TextExecutor, VisionExecutor
from optbench.measure.serving.scenario import Scenario
from optbench.measure.serving.server import ServedModel, ServingRun
from optbench.results.schema import Trial


def _serve(loop: MeasuredLoop, executor: Any, scenario: Scenario, max_batch: int,
           n_inputs: int, latencies: list[float], token_mode: bool,
           phases: dict[str, float], engine: Engine | None = None
           ) -> tuple[list[Trial], dict[str, Any]]:
    """Idle baseline, the variable-batch probe, every point, the closing idle window.

    With an `engine` (a runtime that batches continuously) requests join it between
    decoding steps, up to `max_batch` in flight; else the static batcher runs batches.
    """
    service_s = statistics.median(latencies)
    capacity = max_batch / service_s
    with loop.phase(phases, "trials_s", "serving"):
        trials = [loop.idle_baseline(0)]
        if engine is not None:
            variable = True  # the engine takes requests one by one: no batch shapes
            model: ServedModel = ContinuousServedModel(executor, engine, scenario, max_batch,
                                                       n_inputs, token_mode, loop.clock)
        else:
            variable = executor.probe(max_batch)
            if not variable:
                executor.pad_to = max_batch
            model = ServedModel(executor, scenario, max_batch, n_inputs, token_mode, loop.clock)
        try:
            run = ServingRun(loop, model, scenario, capacity, service_s, loop.sleep)
            trials += run.measure(first_index=1)
        finally:
            model.close()
        if loop.protocol.idle_after:
            trials.append(loop.idle_baseline(len(trials)))
    details = run.details()
    agreed, compared = executor.agreement()
    details.update(batching="static" if engine is None else "continuous",
                   max_batch=max_batch, max_wait_ms=scenario.max_wait_ms,
                   variable_batch=variable, cache_size=scenario.cache_size,
                   repeat_skew=scenario.repeat_skew, duration_s=scenario.duration_s,
                   served_agreement=agreed / compared if compared else None,
                   served_compared=compared,
                   traffic_engine="mlcommons-loadgen (non-MLPerf settings: no mlperf.conf)")
    return trials, details


class ServingLoop(MeasuredLoop):
    """A vision backend under a scenario; `batch_size` is the batcher's max_batch."""

    def __init__(self, backend: Any, scenario: Scenario, batch_size: int, meters: Any,
                 protocol: Any, **kwargs: Any) -> None:
        super().__init__(backend, batch_size, meters, protocol, **kwargs)
        self.scenario = scenario

    def run(self, eval_inputs: np.ndarray, served: Any = None) -> LoopOutput:
        out, _ = self.closed_loop(eval_inputs)
        n_eval = len(out.outputs)
        executor = VisionExecutor(self.backend, eval_inputs[:n_eval], out.outputs)
        out.trials, out.serving = _serve(self, executor, self.scenario, self.batch_size,
                                         n_eval, out.latencies_s, False, out.phases_s)
        out.window_s = self.window_s()
        return out


class ServingGenerationLoop(GenerationLoop):
    """A text generator under a scenario: Poisson prompt arrivals and a queue in front of
    the runtime. `batch_size` requests at most per `generate` call (static batching), or
    in flight at once where the runtime has a continuous-batching engine (vLLM)."""

    def __init__(self, lm: Any, scenario: Scenario, batch_size: int, new_tokens: int,
                 meters: Any, protocol: Any, **kwargs: Any) -> None:
        super().__init__(lm, batch_size, new_tokens, meters, protocol, **kwargs)
        self.scenario = scenario

    def run_text(self, prompts: np.ndarray, perplexity_windows: np.ndarray,
                 served: Any = None) -> LoopOutput:
        out, _ = self.closed_loop_text(prompts, perplexity_windows)
        tokens = out.outputs.tokens
        executor = TextExecutor(self.lm, prompts[:len(tokens)], tokens, self.new_tokens)
        out.trials, out.serving = _serve(self, executor, self.scenario, self.requests_per_call,
                                         len(tokens), out.latencies_s, True, out.phases_s,
                                         engine=self.lm.engine())
        out.window_s = self.window_s()
        out.generation["short_calls"] = self.short_calls
        return out
