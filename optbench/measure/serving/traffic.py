"""MLPerf LoadGen as the traffic engine: its settings, its SUT and QSL, and its verdict.

LoadGen generates the arrivals (Poisson in `server`, closed-loop in `single-stream` and
`multi-stream`, everything at once in `offline`), enforces the minimum duration and
query count, and judges the run (percentiles, early stopping, VALID/INVALID) from its own
log. Rules learnt from the wheel (see docs/serving.md): the issue callback only enqueues
(a blocking one delays every later arrival); completions come from the worker thread;
nothing may escape a callback (it would end the test and crash the process at exit);
trace logging is off; every field is set here and `FromConfig` (mlperf.conf's 600 s
minimum) is never read, so these runs are labelled non-MLPerf.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optbench.errors import Availability, module_availability

log = logging.getLogger(__name__)

LOADGEN_SCENARIOS = {"single-stream": "SingleStream", "multi-stream": "MultiStream",
                     "server": "Server", "offline": "Offline"}
# LoadGen log keys kept with each point (results.cc LogDetail).
KEPT_KEYS = (
    "result_validity", "result_invalid_reason", "early_stopping_result",
    "result_min_duration_met", "result_min_queries_met", "result_perf_constraints_met",
    "result_query_count", "result_scheduled_samples_per_sec",
    "result_completed_samples_per_sec", "result_samples_per_second",
    "result_qps_with_loadgen_overhead", "result_mean_latency_ns",
    "result_50.00_percentile_latency_ns", "result_90.00_percentile_latency_ns",
    "result_99.00_percentile_latency_ns", "result_first_token_mean_latency_ns",
    "result_first_token_99.00_percentile_latency_ns", "result_time_per_output_token_mean_ns",
    "result_time_per_output_token_99.00_percentile_ns", "loadgen_version", "num_errors",
)
# A bound LoadGen needs even when the user gave none: far above anything measured here.
UNBOUNDED_NS = 3600 * 10**9


def availability() -> Availability:
    return module_availability("mlperf_loadgen", extra="serving")


@dataclass(frozen=True)
class Traffic:
    """One LoadGen test: scenario, offered load and bounds (seconds)."""

    scenario: str
    duration_s: float
    rate_per_s: float | None = None  # server: Poisson rate; offline: expected throughput
    latency_bound_s: float | None = None
    expected_latency_s: float | None = None  # single/multi-stream: pre-generation hint
    samples_per_query: int = 8
    seed: int = 0
    token_latencies: bool = False
    ttft_bound_s: float | None = None
    tpot_bound_s: float | None = None


def settings(traffic: Traffic) -> Any:
    import mlperf_loadgen as lg

    s = lg.TestSettings()
    s.scenario = getattr(lg.TestScenario, LOADGEN_SCENARIOS[traffic.scenario])
    s.mode = lg.TestMode.PerformanceOnly
    s.min_duration_ms = int(traffic.duration_s * 1000)
    s.min_query_count = 1
    s.qsl_rng_seed = s.sample_index_rng_seed = s.schedule_rng_seed = traffic.seed
    bound = int(traffic.latency_bound_s * 1e9) if traffic.latency_bound_s else UNBOUNDED_NS
    if traffic.scenario == "server":
        s.server_target_qps = float(traffic.rate_per_s or 1.0)
        s.server_target_latency_ns = bound
    elif traffic.scenario == "offline":
        s.offline_expected_qps = float(traffic.rate_per_s or 1.0)
    elif traffic.scenario == "single-stream":
        # LoadGen pre-generates 2 x duration / expected latency queries: a low hint is safe.
        s.single_stream_expected_latency_ns = max(1000, int((traffic.expected_latency_s or
                                                             1e-3) * 0.5e9))
    else:
        s.multi_stream_samples_per_query = traffic.samples_per_query
        s.multi_stream_expected_latency_ns = max(1000, int((traffic.expected_latency_s or
                                                            1e-3) * 0.5e9))
    if traffic.token_latencies:
        s.use_token_latencies = True
        if traffic.ttft_bound_s:
            s.ttft_latency = int(traffic.ttft_bound_s * 1e9)
        if traffic.tpot_bound_s:
            s.tpot_latency = int(traffic.tpot_bound_s * 1e9)
    return s


def parse_detail(path: Path) -> dict[str, Any]:
    """The kept `:::MLLOG {json}` entries of LoadGen's detail log, by key."""
    found: dict[str, Any] = {}
    if not path.is_file():
        return found
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith(":::MLLOG"):
            continue
        try:
            entry = json.loads(line.split(" ", 1)[1])
        except (IndexError, json.JSONDecodeError):
            continue
        if entry.get("key") in KEPT_KEYS:
            value = entry.get("value")
            found[entry["key"]] = value.strip() if isinstance(value, str) else value
    return found


class LoadgenSut:
    """LoadGen's SUT and QSL around our callbacks, created once per serving run.

    `issue(samples)` gets (response id, sample index) pairs on LoadGen's issue thread and
    must only enqueue; `flush()` follows a test's last issue. `complete` and
    `first_token` are LoadGen's completion calls, safe from any thread.
    """

    def __init__(self, total_samples: int,
                 issue: Callable[[list[tuple[int, int]]], None],
                 flush: Callable[[], None]) -> None:
        import mlperf_loadgen as lg

        self._lg = lg
        self._issue = issue
        self._flush = flush
        self.callback_errors: list[str] = []
        self.sut = lg.ConstructSUT(self._on_issue, self._on_flush)
        self.qsl = lg.ConstructQSL(total_samples, total_samples, lambda _: None,
                                   lambda _: None)

    def _on_issue(self, samples: Sequence[Any]) -> None:
        pairs = [(s.id, s.index) for s in samples]
        try:
            self._issue(pairs)
        except BaseException as exc:  # noqa: BLE001 - an escape would crash the process
            self.callback_errors.append(f"{type(exc).__name__}: {exc}")
            self.complete([i for i, _ in pairs])

    def _on_flush(self) -> None:
        try:
            self._flush()
        except BaseException as exc:  # noqa: BLE001 - as above
            self.callback_errors.append(f"{type(exc).__name__}: {exc}")

    def complete(self, ids: Sequence[int], tokens: int | None = None) -> None:
        lg = self._lg
        if tokens is None:
            responses = [lg.QuerySampleResponse(i, 0, 0) for i in ids]
        else:
            responses = [lg.QuerySampleResponse(i, 0, 0, tokens) for i in ids]
        lg.QuerySamplesComplete(responses)

    def first_token(self, ids: Sequence[int]) -> None:
        lg = self._lg
        lg.FirstTokenComplete([lg.QuerySampleResponse(i, 0, 0) for i in ids])

    def run(self, traffic: Traffic, log_dir: Path | None = None) -> dict[str, Any]:
        """One test, blocking until every issued sample completed; LoadGen's verdict."""
        lg = self._lg
        with tempfile.TemporaryDirectory(prefix="optbench-loadgen-") as tmp:
            outdir = Path(log_dir or tmp)
            outdir.mkdir(parents=True, exist_ok=True)  # a missing outdir aborts at exit
            log_settings = lg.LogSettings()
            log_settings.log_output.outdir = str(outdir)
            log_settings.log_output.copy_summary_to_stdout = False
            log_settings.enable_trace = False
            # An audit.config in the working directory would override our settings.
            audit = str(outdir / "no-audit.config")
            lg.StartTestWithLogSettings(self.sut, self.qsl, settings(traffic), log_settings,
                                        audit)
            return parse_detail(outdir / "mlperf_log_detail.txt")

    def close(self) -> None:
        self._lg.DestroyQSL(self.qsl)
        self._lg.DestroySUT(self.sut)
