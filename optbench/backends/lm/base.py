"""The text-generation contract: a backend's `lm_loader` turns an artifact of format
HF_CAUSAL_LM into a CausalLM, which generates exactly N tokens greedily and scores text
(perplexity)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from optbench.artifact import ModelArtifact

if TYPE_CHECKING:
    from optbench.backends.base import LoadContext

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


class LmLoader(Protocol):
    """`Backend.lm_loader`: a function or CausalLM class that loads a language model.

    Called with the artifact (format HF_CAUSAL_LM), the LoadContext (cache_dir, batch_size:
    requests per call, device) and the backend's Config; converts and caches by digest as
    the backend's `load` does, and may raise `Unavailable(reason)` (the run is skipped).
    """

    def __call__(self, artifact: ModelArtifact, ctx: LoadContext, config: Any) -> CausalLM: ...
