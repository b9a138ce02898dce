"""The CausalLM contract: generate exactly N tokens greedily, and score text (perplexity)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

OnToken = Callable[[], None]


@dataclass
class Generation:
    """One batch of requests, generated.

    Attributes:
        tokens: (requests, new_tokens) generated ids; every row is one request.
        steps: decoding steps the runtime announced through `on_token` (one per position
            for the whole batch); None when the runtime cannot stream (vLLM offline).
        engine_ttft_s, engine_tpot_s: per-request times the runtime measured itself, where
            it cannot stream tokens to the caller (vLLM's request metrics); else None.
    """

    tokens: np.ndarray
    steps: int | None
    engine_ttft_s: list[float] | None = None
    engine_tpot_s: list[float] | None = None


class CausalLM(ABC):
    """A loaded text generator. `path` says what runs (runtime, precision, quantization)."""

    path: str = ""

    @abstractmethod
    def generate(self, prompts: np.ndarray, new_tokens: int, on_token: OnToken) -> Generation:
        """Greedy decoding of exactly `new_tokens` tokens for each prompt of the batch.

        `on_token()` is called once per decoding step, as soon as the step's tokens are
        on the host, so the caller can time first token and inter-token gaps.
        """

    @abstractmethod
    def nll(self, ids: np.ndarray) -> np.ndarray:
        """(batch, L) ids -> (batch, L-1) negative log-likelihood of each next token."""

    def synchronize(self) -> None:
        """Block until queued device work is done."""

    def close(self) -> None:
        """Release the runtime's resources."""

    def describe(self) -> dict[str, Any]:
        return {"path": self.path}
