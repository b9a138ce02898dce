"""The serving ledger's window figures on hand-made arrivals and completions, and the
prediction cache and repeat stream in front of the model."""

import math

import numpy as np
import pytest

from optbench.measure.serving.batcher import Request
from optbench.measure.serving.cache import PredictionCache, RepeatStream
from optbench.measure.serving.ledger import Bounds, Ledger

OPEN, CLOSE = 10_000, 20_000  # the window, in ms below (10 s long)


def ns(ms: float) -> int:
    return round(ms * 1e6)


class Book:
    """A ledger filled request by request: arrival, completion (ms) and the rest."""

    def __init__(self) -> None:
        self.ledger = Ledger()
        self.next_id = 1

    def add(self, arrival_ms: float, done_ms: float | None = None, **kwargs) -> None:
        request = Request(self.next_id, 0, ns(arrival_ms))
        self.next_id += 1
        self.ledger.arrived([request])
        if done_ms is not None:
            if "first_token_ms" in kwargs:
                kwargs["first_token_ns"] = ns(kwargs.pop("first_token_ms"))
            self.ledger.completed([request], ns(done_ms), batch=kwargs.pop("batch", 1),
                                  **kwargs)

    def drop(self, arrival_ms: float, at_ms: float) -> None:
        request = Request(self.next_id, 0, ns(arrival_ms))
        self.next_id += 1
        self.ledger.arrived([request])
        self.ledger.dropped([request], ns(at_ms))

    def summary(self, bounds: Bounds = Bounds()) -> dict:
        return self.ledger.summary(ns(OPEN), ns(CLOSE), bounds)


def test_completed_counts_completions_inside_the_half_open_window():
    book = Book()
    for done in (OPEN - 1, OPEN, CLOSE - 1, CLOSE):
        book.add(done - 5, done)
    s = book.summary()
    assert s["window_s"] == 10.0
    assert s["completed"] == 2  # at OPEN and CLOSE - 1; not before OPEN, not at CLOSE
    assert s["achieved_rate_per_s"] == pytest.approx(0.2)
    assert s["arrived"] == 2 and s["arrival_rate_per_s"] == pytest.approx(0.2)


def test_latency_is_of_the_requests_that_arrived_in_the_window_whenever_done():
    book = Book()
    book.add(OPEN - 100, OPEN + 100)  # completed in the window, arrived before: 200 ms
    book.add(OPEN + 1000, OPEN + 1010)  # both inside: 10 ms
    book.add(CLOSE - 10, CLOSE + 30)  # arrived inside, completed after: 40 ms
    s = book.summary()
    assert s["completed"] == 2 and s["arrived"] == 2
    assert s["latency_mean_s"] == pytest.approx(0.025)
    assert s["latency_p50_s"] == pytest.approx(0.025)
    assert s["latency_p99_s"] == pytest.approx(0.0397)  # numpy's linear interpolation
    assert "ttft_mean_s" not in s  # no first-token times: not a text run


def test_an_empty_window_is_refused_and_a_quiet_one_has_no_latency():
    book = Book()
    with pytest.raises(ValueError, match="empty"):
        book.ledger.summary(ns(OPEN), ns(OPEN))
    s = book.summary()
    assert s["completed"] == 0 and s["latency_p99_s"] is None
    assert s["cache_hit_rate"] is None and s["mean_batch"] is None and not s["saturated"]


def test_goodput_counts_completions_within_every_bound():
    book = Book()
    t = OPEN + 1000
    # latency 50 ms, TTFT 10 ms, 5 tokens: TPOT (50 - 10) / 4 = 10 ms
    book.add(t, t + 50, first_token_ms=t + 10, tokens=5)
    # latency 50 ms, TTFT 30 ms, TPOT 5 ms
    book.add(t, t + 50, first_token_ms=t + 30, tokens=5)
    # latency 120 ms, TTFT 10 ms, TPOT 27.5 ms
    book.add(t, t + 120, first_token_ms=t + 10, tokens=5)
    book.add(t, t + 40)  # no first token recorded: fails any TTFT or TPOT bound
    s = book.summary()
    assert s["goodput_per_s"] == pytest.approx(0.4)  # no bound: all four
    assert book.summary(Bounds(latency_s=0.1))["goodput_per_s"] == pytest.approx(0.3)
    assert book.summary(Bounds(ttft_s=0.02))["goodput_per_s"] == pytest.approx(0.2)
    assert book.summary(Bounds(tpot_s=0.01))["goodput_per_s"] == pytest.approx(0.2)
    both = Bounds(latency_s=0.1, ttft_s=0.02, tpot_s=0.01)
    assert book.summary(both)["goodput_per_s"] == pytest.approx(0.1)
    assert s["tokens"] == 16


def test_ttft_and_tpot_figures():
    book = Book()
    book.add(OPEN + 100, OPEN + 190, first_token_ms=OPEN + 110, tokens=9)  # TPOT 10 ms
    book.add(OPEN + 200, OPEN + 250, first_token_ms=OPEN + 230, tokens=1)  # no TPOT
    s = book.summary()
    assert s["ttft_mean_s"] == pytest.approx(0.02)  # (10 + 30) / 2 ms
    assert s["tpot_mean_s"] == pytest.approx(0.01) and s["tpot_p99_s"] == pytest.approx(0.01)
    done = book.ledger.done[0]
    assert book.ledger.tpot_s(done) == pytest.approx((190 - 110) / 1e3 / 8)
    assert book.ledger.tpot_s(book.ledger.done[1]) is None


def steady(book: Book, rate_per_s: float, service_ms: float) -> None:
    """Arrivals every 1/rate from 0 to CLOSE + 1 s; each done service_ms later."""
    gap = 1000 / rate_per_s
    for k in range(int((CLOSE + 1000) / gap)):
        book.add(k * gap, k * gap + service_ms)


def test_a_model_that_keeps_up_is_not_saturated():
    book = Book()
    steady(book, 20, service_ms=30)  # one in flight at most: each done before the next
    s = book.summary()
    assert s["arrived"] == s["completed"] == 200 and not s["saturated"]
    assert s["backlog_at_open"] == s["backlog_at_close"] == 0


def test_a_growing_backlog_is_saturation():
    book = Book()
    # 20 req/s offered, served one at a time at 10 req/s from t=0: the queue grows 10/s
    for k in range(int((CLOSE + 1000) / 50)):
        book.add(k * 50, (k + 1) * 100)
    s = book.summary()
    assert s["arrived"] == 200 and s["completed"] == 100
    assert s["backlog_at_close"] - s["backlog_at_open"] == pytest.approx(100, abs=1)
    assert s["saturated"]
    # completions a little (under 5%) behind at the close are no saturation
    late = Book()
    for k in range(100):
        arrival = OPEN + k * 100
        late.add(arrival, arrival + 30 if k < 96 else CLOSE + 100)
    s = late.summary()
    assert s["backlog_at_close"] == s["backlog_at_open"] + 4 and not s["saturated"]


def test_dropped_backlog_counts_but_never_completes_or_holds_a_bound():
    book = Book()
    book.add(OPEN + 10, OPEN + 20)
    book.drop(OPEN + 30, CLOSE - 10)
    book.drop(CLOSE - 20, CLOSE + 10)
    s = book.summary()
    assert s["dropped"] == 2 and s["completed"] == 1
    assert s["latency_p99_s"] == pytest.approx(0.01)  # the dropped have no latency
    assert s["goodput_per_s"] == pytest.approx(0.1)
    assert s["tokens"] == 1


def test_cache_hit_rate_and_the_batch_size_of_the_model_calls():
    book = Book()
    for k in range(3):
        book.add(OPEN + k, OPEN + k, hit=True)
    for _ in range(4):
        book.add(OPEN + 100, OPEN + 110, batch=4)
    book.add(OPEN + 200, OPEN + 210, batch=1)
    s = book.summary()
    assert s["cache_hit_rate"] == pytest.approx(3 / 8)
    assert s["mean_batch"] == pytest.approx((4 * 4 + 1) / 5)  # hits never ran a batch


def test_prediction_cache_evicts_the_least_recently_used():
    cache = PredictionCache(2)
    cache.put(1, "a")
    cache.put(2, "b")
    assert cache.get(1) == "a"  # 1 is now the most recent
    cache.put(3, "c")  # evicts 2
    assert cache.get(2) is None and cache.get(3) == "c" and cache.get(1) == "a"
    cache.put(1, "a2")  # an update refreshes, never grows
    cache.put(4, "d")  # evicts 3
    assert cache.get(3) is None and cache.get(1) == "a2"
    assert (cache.hits, cache.misses) == (4, 2)
    cache.clear()
    assert cache.get(1) is None and (cache.hits, cache.misses) == (0, 1)
    with pytest.raises(ValueError):
        PredictionCache(0)


def test_repeat_stream_is_reproducible_by_seed():
    a, b, c = (RepeatStream(500, 1.1, seed) for seed in (7, 7, 8))
    first = a.draw(1000)
    assert first == b.draw(1000) and first != c.draw(1000)
    assert all(0 <= i < 500 for i in first)
    with pytest.raises(ValueError):
        RepeatStream(0, 1.0)
    with pytest.raises(ValueError):
        RepeatStream(10, 0.0)


def che_lru_hit_rate(p: np.ndarray, size: int) -> float:
    """Che's approximation of a warm LRU's hit rate under independent requests with
    probabilities p (accurate to about 0.002 for Zipf streams like these)."""
    lo, hi = 0.0, 1e12
    for _ in range(200):  # the characteristic time T: sum(1 - exp(-p T)) = size
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 - np.exp(-p * mid)).sum() < size else (lo, mid)
    return float((p * (1 - np.exp(-p * lo))).sum())


@pytest.mark.parametrize("n_inputs, skew, size", [(1000, 1.0, 100), (200, 0.8, 50)])
def test_repeat_stream_hit_rates(n_inputs, skew, size):
    stream = RepeatStream(n_inputs, skew, seed=3)
    draws = stream.draw(60_000)
    expected = stream.expected_hit_rate(size)
    # expected_hit_rate is the share of requests for the `size` most popular inputs
    top = set(stream.order[:size].tolist())
    share = np.mean([d in top for d in draws])
    assert share == pytest.approx(expected, abs=3 * math.sqrt(expected * (1 - expected)
                                                               / len(draws)))
    # a warm LRU gets less than that static best; Che's approximation says how much
    cache = PredictionCache(size)
    for i, d in enumerate(draws):
        if i == 10_000:  # warm: count from here
            cache.hits = cache.misses = 0
        if cache.get(d) is None:
            cache.put(d, d)
    lru = cache.hits / (cache.hits + cache.misses)
    p = np.diff(stream.cdf, prepend=0.0)
    assert lru == pytest.approx(che_lru_hit_rate(p, size), abs=0.01)
    assert lru < expected
    assert stream.expected_hit_rate(10 * n_inputs) == pytest.approx(1.0)
