"""Continuous batching: the serving worker feeds a runtime's engine request by request.

`ServedModel` batches statically: its worker takes a batch by the policy and runs one
`generate` over it, so every request of the batch gets its first token and completes with
the others, and a request arriving meanwhile waits for the whole batch. Here the worker
drives an `Engine` (backends.lm.base; vLLM's LLMEngine) instead: before each step it moves
the waiting requests into the engine, up to `max_batch` in flight (the concurrency, vLLM's
max_num_seqs), so they join the running batch at the next step; each request's first
token and completion are its own, reported to LoadGen (FirstTokenComplete, then
QuerySamplesComplete) and to the ledger as the step that produced them returns. With
nothing in flight the worker waits for the next batch by the policy (`max_wait_ms` holds
the first arrival for company, as the static batcher does).

Everything else is ServedModel's: the issue callback (stamp, cache hits, enqueue), the
backlog dropped at a saturated point's end, and the interface ServingRun drives.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optbench.backends.lm.base import Engine
from optbench.measure.serving.batcher import Request
from optbench.measure.serving.scenario import Scenario
from optbench.measure.serving.server import ServedModel

log = logging.getLogger(__name__)


@dataclass
class InFlight:
    """A request inside the engine: its tokens so far and when the first one came."""

    request: Request
    tokens: int = 0
    first_token_ns: int | None = None
    steps: int = 0
    company: int = 0  # requests in flight, summed over its steps (its mean batch x steps)

    def mean_batch(self) -> int:
        return round(self.company / self.steps) if self.steps else 1


class ContinuousServedModel(ServedModel):
    """LoadGen's SUT in front of an engine that takes requests between decoding steps.

    `executor` is a TextExecutor: its prompts, `new_tokens`, and `check` (the served
    tokens against the quality pass's). The engine is used from the worker thread only.
    """

    def __init__(self, executor: Any, engine: Engine, scenario: Scenario, max_batch: int,
                 n_inputs: int, token_mode: bool = True,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        super().__init__(executor, scenario, max_batch, n_inputs, token_mode, clock)
        self.engine = engine
        self._ids = itertools.count(1)  # engine request ids, unique over the engine's life

    def reset(self) -> None:
        if self.engine.has_unfinished():  # a point must start on an empty engine
            log.warning("the engine still held requests from an earlier point")
        super().reset()

    def _work(self) -> None:
        flight: dict[int, InFlight] = {}
        while True:
            if flight:  # join the running batch at the next step
                arrived = self.queue.take(self.max_batch - len(flight))
            elif (batch := self.queue.next_batch()) is None:
                return
            else:
                arrived = batch
            for request in arrived:
                self._admit(request, flight)
            if flight:
                self._step(flight)
            if not flight and self.queue.depth() == 0:
                self.queue_empty.set()

    def _admit(self, request: Request, flight: dict[int, InFlight]) -> None:
        key = next(self._ids)
        try:
            self.engine.add(key, self.executor.prompts[request.index], self.executor.new_tokens)
        except Exception as exc:  # noqa: BLE001 - a refused request must still complete
            self._fail([InFlight(request)], exc)
            return
        flight[key] = InFlight(request)

    def _step(self, flight: dict[int, InFlight]) -> None:
        try:
            events = self.engine.step()
        except Exception as exc:  # noqa: BLE001 - the requests in flight must complete
            failed = list(flight.values())
            try:
                self.engine.abort(list(flight))
            except Exception:  # noqa: BLE001 - the step's failure is the one reported
                log.exception("aborting the failed step's requests failed")
            flight.clear()
            self._fail(failed, exc)
            return
        now = self.clock()  # the step's tokens are on the host: they count from here
        for f in flight.values():
            f.steps += 1
            f.company += len(flight)
        for event in events:
            f = flight.get(event.request_id)
            if f is None:  # not in flight (aborted): nothing to report
                continue
            f.tokens += event.new_tokens
            if f.first_token_ns is None and (event.first or event.new_tokens):
                self._first_token(f, now)
            if event.finished:
                del flight[event.request_id]
                self._done(f, event.token_ids, now)

    def _first_token(self, f: InFlight, now: int) -> None:
        f.first_token_ns = now
        if self.token_mode:
            self.sut.first_token([f.request.id])

    def _done(self, f: InFlight, token_ids: Any, now: int) -> None:
        r = f.request
        if f.first_token_ns is None:  # finished without a token: LoadGen still needs one
            self._first_token(f, now)
        if token_ids is not None:
            self.executor.check([r.index], [token_ids])
            if self.cache is not None:
                self.cache.put(r.index, token_ids)
        self.ledger.completed([r], now, batch=f.mean_batch(), first_token_ns=f.first_token_ns,
                              tokens=f.tokens)
        self._complete([r], f.tokens)

    def _fail(self, failed: list[InFlight], exc: Exception) -> None:
        if not self.ledger.errors:  # the first one in full; the rest are counted
            log.error("serving engine failed", exc_info=exc)
        self.ledger.errors.append(f"{type(exc).__name__}: {exc}")
        if self.token_mode:
            pending = [f.request.id for f in failed if f.first_token_ns is None]
            if pending:
                self.sut.first_token(pending)
        self._complete([f.request for f in failed], 0)
