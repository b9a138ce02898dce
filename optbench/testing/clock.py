"""A monotonic nanosecond clock that only moves when told to."""

from __future__ import annotations


class FakeClock:
    """Callable like `time.monotonic_ns`; `sleep`/`advance` move it forward.

    `min_step_ns` makes every sleep advance at least that much, like a real sleep that
    never returns in zero time (polling loops would otherwise spin forever).
    """

    def __init__(self, start_ns: int = 10**9, min_step_ns: int = 0) -> None:
        self.now = start_ns
        self.min_step_ns = min_step_ns

    def __call__(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(int(seconds * 1e9), self.min_step_ns)

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)
