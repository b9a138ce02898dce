"""The system under test and the measured serving points.

`ServedModel` is what LoadGen talks to: an issue callback that stamps arrivals, answers
cache hits and enqueues the rest; one worker thread that takes batches by the policy,
runs them and completes them. `ServingRun` measures one point per offered load: LoadGen
issues in a background thread while this thread opens the meters' window once the warm-up
share of the duration has passed and closes it before the arrivals end, so warm-up and
drain are excluded (the window rule, docs/serving.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from optbench.measure.serving.batcher import BatchQueue, Request
from optbench.measure.serving.cache import PredictionCache, RepeatStream
from optbench.measure.serving.ledger import Bounds, Ledger
from optbench.measure.serving.scenario import Scenario, sweep_rates
from optbench.measure.serving.traffic import LoadgenSut, Traffic
from optbench.results.schema import Trial

log = logging.getLogger(__name__)

# The window rule: open after WARMUP_SHARE of the duration (at least WARMUP_MIN_S),
# close DRAIN_SHARE before its end, where the arrivals stop and the queue drains.
WARMUP_SHARE, WARMUP_MIN_S, DRAIN_SHARE = 0.1, 0.25, 0.05
SUBWINDOWS = 3
FIRST_ARRIVAL_TIMEOUT_S = 60.0
# The capacity burst: about this many seconds of work by the closed-loop estimate, within
# these many requests (a closed-loop estimate can be far above what the path serves).
CALIBRATION_S, CALIBRATION_MIN_SAMPLES, CALIBRATION_MAX_SAMPLES = 1.0, 32, 5000
SERVE_PHASE = "serve"  # the trial phase of a serving point's window
# The rate search's bracket: at most BRACKET_PROBES probes, upwards first just past the
# measured capacity (SEARCH_PAST x), then doubling, never beyond SEARCH_CEILING x.
BRACKET_PROBES, SEARCH_PAST, SEARCH_CEILING = 3, 1.1, 4.0


class ServedModel:
    """Queue, batcher, worker and cache between LoadGen and an executor."""

    def __init__(self, executor: Any, scenario: Scenario, max_batch: int, n_inputs: int,
                 token_mode: bool, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.executor = executor
        self.scenario = scenario
        self.max_batch = max_batch
        self.token_mode = token_mode
        self.clock = clock
        self.cache = PredictionCache(scenario.cache_size) if scenario.cache_size else None
        self.stream = (RepeatStream(n_inputs, scenario.repeat_skew, scenario.seed)
                       if scenario.repeat_skew else None)
        self.sut = LoadgenSut(n_inputs, self.issue, self.flush)
        self.ledger = Ledger()
        self.queue = self._new_queue()
        self.drop_backlog = self.flushed = False
        self._flush_lock = threading.Lock()
        self.queue_empty = threading.Event()
        self.first_arrival = threading.Event()

    def _new_queue(self) -> BatchQueue:
        return BatchQueue(self.max_batch, int(self.scenario.max_wait_ms * 1e6), self.clock)

    def reset(self) -> None:
        """A fresh point: new ledger and queue, a cold cache."""
        self.ledger = Ledger()
        self.queue = self._new_queue()
        self.drop_backlog = self.flushed = False
        self.queue_empty.clear()
        self.first_arrival.clear()
        if self.cache:
            self.cache.clear()

    def work(self) -> None:
        """Serve batches until the queue is closed and empty. Runs on the thread that
        loaded the model: runtimes keep per-thread state (torch's inference mode and
        OpenMP team, compiled graphs' guards, CUDA's current stream); on a fresh thread
        the first torch.compile'd int8 call recompiled for 4.4 s, and eager fp32 ran at
        1.3 ms instead of 0.32 ms per image on the 2-core VM."""
        self._work()

    # LoadGen's issue thread: stamp, answer hits, enqueue; never block, never raise.
    def issue(self, pairs: list[tuple[int, int]]) -> None:
        now = self.clock()
        indices = self.stream.draw(len(pairs)) if self.stream else [i for _, i in pairs]
        requests = [Request(rid, index, now) for (rid, _), index in zip(pairs, indices)]
        self.ledger.arrived(requests)
        self.first_arrival.set()
        if self.cache is not None:
            misses = []
            for r in requests:
                if self.cache.get(r.index) is None:
                    misses.append(r)
                else:
                    self._finish([r], first_token_ns=None, hit=True)
            requests = misses
        if requests:
            self.queue_empty.clear()
            self.queue.put(requests)

    def flush(self) -> None:
        """LoadGen's last issue is done: a saturated point's backlog is not served."""
        with self._flush_lock:
            self.flushed = True
            if self.drop_backlog:
                self._drop()

    def saturated(self) -> None:
        """The window found the model behind: drop the backlog once arrivals end."""
        with self._flush_lock:
            self.drop_backlog = True
            if self.flushed:
                self._drop()

    def _drop(self) -> None:
        backlog = self.queue.drain()
        if backlog:
            self.ledger.dropped(backlog, self.clock())
            if self.token_mode:
                self.sut.first_token([r.id for r in backlog])
            self._complete(backlog, 0)

    def _work(self) -> None:
        while (batch := self.queue.next_batch()) is not None:
            first: list[int] = []

            def first_token(batch: list[Request] = batch, first: list[int] = first) -> None:
                first.append(self.clock())
                if self.token_mode:
                    self.sut.first_token([r.id for r in batch])

            try:
                outputs = self.executor.run([r.index for r in batch], first_token)
            except Exception as exc:  # noqa: BLE001 - a failed batch must still complete
                if not self.ledger.errors:  # the first one in full; the rest are counted
                    log.exception("serving batch failed")
                self.ledger.errors.append(f"{type(exc).__name__}: {exc}")
                if self.token_mode and not first:
                    self.sut.first_token([r.id for r in batch])
                self._complete(batch, 0)
                continue
            if self.cache is not None:
                for r, output in zip(batch, outputs):
                    self.cache.put(r.index, output)
            self._finish(batch, first[0] if first else None, hit=False)
            if self.scenario.kind == "offline" and self.queue.depth() == 0:
                self.queue_empty.set()  # the offline window closes on it

    def _finish(self, batch: list[Request], first_token_ns: int | None, hit: bool) -> None:
        tokens = self.executor.tokens_per_request
        done = self.clock()
        if hit and self.token_mode:
            self.sut.first_token([r.id for r in batch])
            first_token_ns = done
        self.ledger.completed(batch, done, batch=len(batch), first_token_ns=first_token_ns,
                              tokens=tokens, hit=hit)
        self._complete(batch, tokens)

    def _complete(self, batch: list[Request], tokens: int) -> None:
        ids = [r.id for r in batch]
        self.sut.complete(ids, max(tokens, 1) if self.token_mode else None)

    def close(self) -> None:
        self.sut.close()


@dataclass
class Point:
    """One measured load: what was offered, LoadGen's verdict, and the window's figures."""

    offered_rate_per_s: float | None
    trials: list[int]
    figures: dict[str, Any]
    loadgen: dict[str, Any]
    probe: bool = False
    notes: list[str] = field(default_factory=list)

    def holds(self, bounds: Bounds) -> bool:
        """Within every bound at p99, and not saturated."""
        f = self.figures
        if f["saturated"] or f["errors"]:
            return False
        for bound, key in ((bounds.latency_s, "latency_p99_s"), (bounds.ttft_s, "ttft_p99_s"),
                           (bounds.tpot_s, "tpot_p99_s")):
            if bound is not None and (f.get(key) is None or f[key] > bound):
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"offered_rate_per_s": self.offered_rate_per_s, "trials": self.trials,
                "probe": self.probe, "figures": self.figures, "loadgen": self.loadgen,
                "notes": self.notes}


class ServingRun:
    """Every point of one configuration's scenario, metered through `loop`'s windows."""

    def __init__(self, loop: Any, model: ServedModel, scenario: Scenario,
                 capacity_per_s: float, service_s: float,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.loop = loop
        self.model = model
        self.scenario = scenario
        self.capacity_per_s = capacity_per_s
        self.service_s = service_s
        self.sleep = sleep
        self.bounds = Bounds(
            *(None if b is None else b / 1e3 for b in (
                scenario.latency_bound_ms, scenario.ttft_bound_ms, scenario.tpot_bound_ms)))
        self.trials: list[Trial] = []
        self.points: list[Point] = []
        self._index = 1  # trial index of the next window (0 is the idle baseline)

    def measure(self, first_index: int) -> list[Trial]:
        s = self.scenario
        self._index = first_index
        self.closed_loop_capacity_per_s = self.capacity_per_s
        self.capacity_per_s = self.calibrate()
        if s.kind != "server":
            rate = self.capacity_per_s if s.kind == "offline" else None
            self.point(rate)
        else:
            rates = s.rates_per_s or sweep_rates(self.capacity_per_s)
            for rate in rates:
                self.point(rate)
            if s.searches:
                self.search()
        return self.trials

    def traffic(self, rate: float | None) -> Traffic:
        s = self.scenario
        return Traffic(s.kind, s.duration_s, rate, self.bounds.latency_s, self.service_s,
                       s.samples_per_query, s.seed, self.model.token_mode,
                       self.bounds.ttft_s, self.bounds.tpot_s)

    def point(self, rate: float | None, probe: bool = False) -> Point:
        """One LoadGen test at `rate`, metered over the steady window.

        Three threads: LoadGen issues on its own, the meters' windows are opened and
        closed on a helper, and this thread (the model's) serves."""
        loop, model = self.loop, self.model
        label = f"{self.scenario.kind}" + (f" at {rate:.4g} req/s" if rate else "")
        loop.on_phase(f"serving: {label}" + (" (rate search)" if probe else ""))
        verdict: dict[str, Any] = {}
        metered: dict[str, Any] = {}
        failure: list[BaseException] = []

        def meter() -> None:
            try:
                metered.update(self.windows())
            except BaseException as exc:  # noqa: BLE001 - re-raised on this thread
                failure.append(exc)

        self.serve(self.traffic(rate), verdict, failure, side=meter)
        if failure:
            raise failure[0]
        if model.ledger.errors or model.sut.callback_errors:
            # a configuration that fails requests has no serving figures to trust
            errors = model.ledger.errors + model.sut.callback_errors
            raise RuntimeError(f"serving at {label}: {len(errors)} failed batch(es), the "
                               f"first: {errors[0]}")
        trials, figures = metered["trials"], metered["figures"]
        figures["dropped"] = sum(1 for x in model.ledger.done if x.dropped)
        notes = []
        shortest = min(t.window_s for t in trials)
        if shortest < loop.window_s():
            notes.append(f"metered window of {shortest:.2g} s, below the {loop.window_s():.2g} s "
                         "the preset and meters ask for: lengthen duration_s")
        elif len(trials) == 1:
            notes.append("one metered window (duration_s too short to split): no interval")
        if model.sut.callback_errors:
            notes.append("callback errors: " + "; ".join(model.sut.callback_errors[:3]))
        if figures["errors"]:
            notes.append("failed batches: " + "; ".join(model.ledger.errors[:3]))
        if figures["dropped"]:
            notes.append(f"{figures['dropped']} requests of the backlog left unserved when "
                         "arrivals ended (saturated): LoadGen's latencies count them as "
                         "instant, ours do not")
        point = Point(rate, [t.index for t in trials], figures, verdict, probe, notes)
        self.trials.extend(trials)
        self.points.append(point)
        self._index += len(trials)
        return point

    def serve(self, traffic: Traffic, verdict: dict[str, Any], failure: list[BaseException],
              side: Callable[[], None] | None = None) -> None:
        """One LoadGen test: it issues on its own thread (and closes the queue when every
        sample completed), `side` runs on another, the model serves on this one."""
        model = self.model
        model.reset()

        def issue() -> None:
            try:
                verdict.update(model.sut.run(traffic))
            except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
                failure.append(exc)
            finally:
                model.queue_empty.set()
                model.first_arrival.set()  # a test that ends before any arrival
                model.queue.close()

        threads = [threading.Thread(target=issue, name="optbench-loadgen", daemon=True)]
        if side is not None:
            threads.append(threading.Thread(target=side, name="optbench-meters", daemon=True))
        for thread in threads:
            thread.start()
        model.work()
        for thread in threads:
            thread.join()

    def windows(self) -> dict[str, Any]:
        """The meters' windows over the point's steady state (the window rule: timed from
        the first arrival, however long LoadGen takes to start), as up to SUBWINDOWS
        back-to-back windows: their spread gives the energy figure's interval, their sum
        the point's totals. A saturated point's backlog is then dropped."""
        loop, model, d = self.loop, self.model, self.scenario.duration_s
        if not model.first_arrival.wait(d + FIRST_ARRIVAL_TIMEOUT_S):
            raise RuntimeError(f"serving: no request arrived within {d:g} + "
                               f"{FIRST_ARRIVAL_TIMEOUT_S:g} s of starting LoadGen")
        if not model.ledger.arrivals:
            raise RuntimeError("serving: LoadGen ended without issuing a request")
        start = model.ledger.arrivals[0]
        warm_ns = int(max(WARMUP_MIN_S, WARMUP_SHARE * d) * 1e9)
        close_ns = start + int((1 - DRAIN_SHARE) * d * 1e9)
        self._sleep_until(start + warm_ns)
        edges, trials, parts = [], [], []
        steady_ns = max(close_ns - loop.clock(), 0)
        # as many sub-windows (up to SUBWINDOWS) as the meters' minimum window allows
        count = int(min(SUBWINDOWS, max(1, steady_ns / 1e9 // max(loop.window_s(), 1e-9))))
        span_ns = steady_ns // count
        t_close = loop.clock()
        for k in range(count):
            telemetry = loop._open_window()
            t_open = loop.clock()
            edges.append(t_open)
            if self.scenario.kind == "offline":
                # all work was issued at once: the window ends when the queue runs dry
                model.queue_empty.wait(max(0.0, (t_open + span_ns - loop.clock()) / 1e9))
            else:
                self._sleep_until(t_open + span_ns if k < count - 1 else close_ns)
            t_close = loop.clock()
            # close the meters first: what they read and what is counted end together
            trial = loop._close_window(self._index + k, SERVE_PHASE, t_open, 0, telemetry)
            part = model.ledger.summary(t_open, max(t_close, t_open + 1), self.bounds,
                                        model.max_batch)
            parts.append(part)
            trials.append(replace(
                trial, samples=part["tokens"] if model.token_mode else part["completed"],
                requests=part["completed"],
                telemetry={**trial.telemetry, "serving_point": len(self.points)}))
            if self.scenario.kind == "offline" and model.queue_empty.is_set():
                break
        edges.append(t_close)
        figures = self.figures(model.ledger.summary(edges[0], edges[-1], self.bounds,
                                                    model.max_batch), parts)
        if figures["saturated"]:
            model.saturated()
        return {"trials": trials, "figures": figures}

    def calibrate(self) -> float:
        """The configuration's capacity through the serving path itself: a short offline
        burst (every request queued at once, so batches run full), unmetered. The
        closed-loop estimate misses the path's own per-request cost, which on a fast model
        dominates (mnist-cnn int8 on torch: 12,500/s closed loop, 3,000/s served)."""
        self.loop.on_phase("serving: capacity through the serving path")
        samples = int(min(CALIBRATION_MAX_SAMPLES,
                          max(CALIBRATION_MIN_SAMPLES, self.capacity_per_s * CALIBRATION_S)))
        traffic = replace(self.traffic(None), scenario="offline", duration_s=CALIBRATION_S,
                          rate_per_s=samples / CALIBRATION_S / 1.1)
        failure: list[BaseException] = []
        self.serve(traffic, {}, failure)
        if failure:
            raise failure[0]
        done = [d for d in self.model.ledger.done if not d.dropped]
        if self.model.ledger.errors or not done:
            raise RuntimeError("serving: the capacity burst failed: "
                               + "; ".join(self.model.ledger.errors[:1] or ["no request done"]))
        first = min(d.arrival_ns for d in done)
        span_s = (max(d.done_ns for d in done) - first) / 1e9
        return len(done) / span_s if span_s > 0 else self.capacity_per_s

    @staticmethod
    def figures(span: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
        """The point's figures: latency, saturation and the backlog over the whole span;
        the counts and rates summed over the metered windows, so that they and the energy
        of those windows cover the same seconds (the gaps between windows left out)."""
        seconds = sum(p["window_s"] for p in parts)
        counts = {k: sum(p[k] for p in parts) for k in ("arrived", "completed", "tokens")}
        good = sum(p["goodput_per_s"] * p["window_s"] for p in parts)
        return {**span, **counts, "window_s": seconds,
                "achieved_rate_per_s": counts["completed"] / seconds,
                "arrival_rate_per_s": counts["arrived"] / seconds,
                "goodput_per_s": good / seconds,
                "windows": [{k: p[k] for k in ("window_s", "arrived", "completed", "tokens")}
                            for p in parts]}

    def _sleep_until(self, deadline_ns: int) -> None:
        while (left := deadline_ns - self.loop.clock()) > 0:
            self.sleep(min(left / 1e9, 0.05))

    def search(self) -> None:
        """The highest offered rate whose point holds the bounds: bracket, then bisect."""
        holds = {p.offered_rate_per_s: p.holds(self.bounds) for p in self.points}
        ceiling = SEARCH_CEILING * self.capacity_per_s
        lo = max((r for r, ok in holds.items() if ok), default=None)
        hi = min((r for r, ok in holds.items() if not ok and (lo is None or r > lo)),
                 default=None)
        for _ in range(BRACKET_PROBES):  # bracket: go up (all held) or down (none held)
            if lo is not None and hi is not None:
                break
            if hi is None:
                assert lo is not None
                if lo >= ceiling:
                    break
                # the capacity is where the queue must fail: past it first, then doubling
                past = SEARCH_PAST * self.capacity_per_s
                rate = min(past if lo < past else lo * 2, ceiling)
            else:
                rate = hi / 4
            if self.point(rate, probe=True).holds(self.bounds):
                lo = rate if lo is None or rate > lo else lo
            else:
                hi = rate if hi is None or rate < hi else hi
        if lo is not None and hi is not None:
            for _ in range(self.scenario.search_steps):
                mid = (lo + hi) / 2
                if self.point(mid, probe=True).holds(self.bounds):
                    lo = mid
                else:
                    hi = mid
        self.max_rate = lo
        self.search_bracket = (lo, hi)
        # without a failing rate above it, the maximum found is only a lower bound
        self.max_rate_is_lower_bound = lo is not None and hi is None

    def details(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.kind,
            "capacity_per_s": self.capacity_per_s,
            "capacity_source": "offline burst through the serving path (unmetered)",
            "closed_loop_capacity_per_s": getattr(self, "closed_loop_capacity_per_s", None),
            "window_rule": (f"open {WARMUP_SHARE:.0%} of the duration after the first "
                            f"arrival (at least {WARMUP_MIN_S} s), close {DRAIN_SHARE:.0%} "
                            "before its end (offline: when the queue runs dry)"),
            "bounds_s": {"latency": self.bounds.latency_s, "ttft": self.bounds.ttft_s,
                         "tpot": self.bounds.tpot_s},
            "max_rate_under_bound_per_s": getattr(self, "max_rate", None),
            "search_bracket_per_s": list(getattr(self, "search_bracket", (None, None))),
            "max_rate_is_lower_bound": getattr(self, "max_rate_is_lower_bound", None),
            "points": [p.to_dict() for p in self.points],
        }
