"""The dynamic batcher's policy on a fake clock: no threads, no real waiting. The queue's
injected `wait` plays the world while the worker would block: it moves the clock and
delivers the scripted arrivals due by then."""

import pytest

from optbench.measure.serving.batcher import BatchQueue, Request
from optbench.testing.clock import FakeClock

MS = 1_000_000


class Arrivals:
    """Scripted arrivals (ns offsets from the start, request ids) and a `wait` for a
    BatchQueue: each wait advances the clock to the next arrival or to the timeout,
    whichever is first, and enqueues what arrived; with nothing left to arrive, an
    untimed wait closes the queue (the run is over)."""

    def __init__(self, script: list[tuple[int, list[int]]]) -> None:
        self.clock = FakeClock()
        self.start = self.clock()
        self.script = sorted(script)
        self.waits: list[float | None] = []
        self.queue: BatchQueue | None = None

    def make(self, max_batch: int, max_wait_ns: int) -> BatchQueue:
        self.queue = BatchQueue(max_batch, max_wait_ns, self.clock, self.wait)
        self.deliver()
        return self.queue

    def deliver(self) -> None:
        """Enqueue every scripted arrival due by now."""
        while self.script and self.start + self.script[0][0] <= self.clock():
            _, ids = self.script.pop(0)
            self.queue.put([Request(i, i, self.clock()) for i in ids])

    def wait(self, _cond, timeout_s: float | None) -> None:
        self.waits.append(timeout_s)
        next_ns = self.start + self.script[0][0] if self.script else None
        if timeout_s is None:
            if next_ns is None:
                self.queue.close()
                return
            self.clock.now = max(self.clock.now, next_ns)
        else:
            deadline = self.clock.now + round(timeout_s * 1e9)
            self.clock.now = deadline if next_ns is None else min(deadline, next_ns)
        self.deliver()

    def elapsed_ns(self) -> int:
        return self.clock() - self.start


def ids(batch):
    return [r.id for r in batch]


def test_a_full_batch_goes_at_once():
    world = Arrivals([(0, [1, 2, 3, 4, 5])])
    queue = world.make(max_batch=4, max_wait_ns=5 * MS)
    assert ids(queue.next_batch()) == [1, 2, 3, 4]
    assert world.waits == [] and world.elapsed_ns() == 0
    assert queue.peak_depth == 5 and queue.depth() == 1


def test_a_partial_batch_waits_max_wait_from_its_oldest_request():
    # 1 at 0 ms, 2 at 1 ms, 3 at 6 ms; max_wait 5 ms: {1, 2} go at 5 ms, not 6 (1 ms + 5)
    world = Arrivals([(0, [1]), (1 * MS, [2]), (6 * MS, [3])])
    queue = world.make(max_batch=4, max_wait_ns=5 * MS)
    assert ids(queue.next_batch()) == [1, 2]
    assert world.elapsed_ns() == 5 * MS
    # the first wait asked for the whole 5 ms; after 2 came, only what was left of them
    assert world.waits == [pytest.approx(0.005), pytest.approx(0.004)]
    # 3 waits its own 5 ms from 6 ms; then the run ends and the queue reports it
    assert ids(queue.next_batch()) == [3]
    assert world.elapsed_ns() == 11 * MS
    assert queue.next_batch() is None


def test_a_batch_that_fills_while_waiting_goes_when_full():
    world = Arrivals([(0, [1]), (1 * MS, [2]), (2 * MS, [3, 4])])
    queue = world.make(max_batch=3, max_wait_ns=10 * MS)
    assert ids(queue.next_batch()) == [1, 2, 3]
    assert world.elapsed_ns() == 2 * MS
    assert ids(queue.next_batch()) == [4]
    assert world.elapsed_ns() == 12 * MS  # 4 arrived at 2 ms and waited its 10 ms


def test_an_old_request_goes_without_waiting():
    world = Arrivals([(0, [1])])
    queue = world.make(max_batch=8, max_wait_ns=5 * MS)
    world.clock.advance(0.007)  # the worker was busy elsewhere for longer than max_wait
    assert ids(queue.next_batch()) == [1]
    assert world.waits == []


def test_max_wait_zero_serves_whatever_is_queued():
    world = Arrivals([(0, [1, 2]), (3 * MS, [3])])
    queue = world.make(max_batch=8, max_wait_ns=0)
    assert ids(queue.next_batch()) == [1, 2]
    assert world.waits == []
    # an empty queue waits for the next arrival, untimed, and serves it alone
    assert ids(queue.next_batch()) == [3]
    assert world.waits == [None] and world.elapsed_ns() == 3 * MS


def test_requests_are_served_first_in_first_out():
    world = Arrivals([(t * MS, [t]) for t in range(1, 11)])
    queue = world.make(max_batch=3, max_wait_ns=2 * MS)
    served = []
    while (batch := queue.next_batch()) is not None:
        served += ids(batch)
        assert len(batch) <= 3
    assert served == list(range(1, 11))


def test_close_drains_what_is_queued_then_returns_none():
    world = Arrivals([(0, [1, 2, 3])])
    queue = world.make(max_batch=2, max_wait_ns=50 * MS)
    queue.close()
    # closed: the partial batch goes without waiting out max_wait
    assert ids(queue.next_batch()) == [1, 2]
    assert ids(queue.next_batch()) == [3]
    assert queue.next_batch() is None and queue.next_batch() is None
    assert world.waits == []


def test_drain_empties_the_backlog():
    world = Arrivals([(0, [1, 2, 3])])
    queue = world.make(max_batch=1, max_wait_ns=0)
    assert ids(queue.drain()) == [1, 2, 3]
    assert queue.depth() == 0 and queue.drain() == []


@pytest.mark.parametrize("max_batch, max_wait_ns, message", [
    (0, 0, "max_batch"), (-1, 0, "max_batch"), (1, -1, "max_wait_ns")])
def test_invalid_policies_are_refused(max_batch, max_wait_ns, message):
    with pytest.raises(ValueError, match=message):
        BatchQueue(max_batch, max_wait_ns)
