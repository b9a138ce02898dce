"""The queue in front of the model and its dynamic batcher.

Requests are queued as they arrive. A worker takes a batch when either `max_batch`
requests wait, or the oldest waiting request has waited `max_wait_ns` (Triton's
`max_queue_delay`): the batch never holds its first request longer than that for
company. `max_wait_ns=0` serves whatever is queued at once. Time and waiting are
injected, so the policy is tested on a fake clock without threads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Clock = Callable[[], int]


@dataclass
class Request:
    """One query sample: LoadGen's response id, the evaluation input it asks for (`index`),
    and when it reached the queue (ns, monotonic)."""

    id: int
    index: int
    arrival_ns: int


class BatchQueue:
    """A thread-safe FIFO of requests; `next_batch` applies the batching policy.

    `wait(condition, timeout_s)` blocks on the condition (default: `Condition.wait`); a
    test passes one that advances a fake clock instead.
    """

    def __init__(self, max_batch: int, max_wait_ns: int, clock: Clock = time.monotonic_ns,
                 wait: Callable[[threading.Condition, float | None], object] | None = None
                 ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ns < 0:
            raise ValueError(f"max_wait_ns must be >= 0, got {max_wait_ns}")
        self.max_batch = max_batch
        self.max_wait_ns = max_wait_ns
        self.clock = clock
        self._wait = wait or (lambda cond, timeout: cond.wait(timeout))
        self._items: deque[Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.peak_depth = 0

    def put(self, requests: Sequence[Request]) -> None:
        with self._cond:
            self._items.extend(requests)
            self.peak_depth = max(self.peak_depth, len(self._items))
            self._cond.notify_all()

    def close(self) -> None:
        """No more requests: workers drain what is queued, then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def depth(self) -> int:
        with self._cond:
            return len(self._items)

    def drain(self) -> list[Request]:
        """Everything still queued, removed (the backlog left when arrivals end)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items

    def take(self, count: int) -> list[Request]:
        """Up to `count` waiting requests, without waiting (continuous batching admits
        them between decoding steps)."""
        with self._cond:
            n = max(0, min(count, len(self._items)))
            return [self._items.popleft() for _ in range(n)]

    def next_batch(self) -> list[Request] | None:
        """Block for the next batch by the policy; None once closed and empty."""
        with self._cond:
            while True:
                if not self._items:
                    if self._closed:
                        return None
                    self._wait(self._cond, None)
                    continue
                if len(self._items) >= self.max_batch or self._closed:
                    break
                remaining = self._items[0].arrival_ns + self.max_wait_ns - self.clock()
                if remaining <= 0:
                    break
                self._wait(self._cond, remaining / 1e9)
            count = min(self.max_batch, len(self._items))
            return [self._items.popleft() for _ in range(count)]
