"""The text-generation contract: a backend's `lm_loader` turns an artifact of format
HF_CAUSAL_LM into a CausalLM, which generates exactly N tokens greedily and scores text
(perplexity). A runtime that batches continuously (requests join and leave between
decoding steps, vLLM) also offers an `Engine`, which the serving worker feeds request by
request; the others batch statically (one `generate` call per batch)."""

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


@dataclass(frozen=True)
class TokenEvent:
    """What one engine step did for one request.

    Attributes:
        request_id: the id the request was added with.
        new_tokens: tokens this step produced for it (0 is possible on a finishing step).
        first: this step produced the request's first token.
        finished: the request is done (it produced all its tokens, or stopped short).
        token_ids: on the finishing event, every id the request generated; else None.
    """

    request_id: int
    new_tokens: int
    first: bool
    finished: bool
    token_ids: np.ndarray | None = None


class Engine(Protocol):
    """A continuous-batching engine, driven from one thread: `add` requests at any time
    between steps; each `step` runs one scheduling iteration (prefill of new requests,
    one decoding step of the running ones) and says what it produced, per request."""

    def add(self, request_id: int, prompt_ids: np.ndarray, new_tokens: int) -> None:
        """Queue one request: greedy, exactly `new_tokens` tokens (no early stop)."""

    def step(self) -> list[TokenEvent]:
        """One iteration; events only for requests it advanced or finished."""

    def has_unfinished(self) -> bool:
        """Whether any added request has not finished."""

    def abort(self, request_ids: list[int]) -> None:
        """Forget these requests (after a failed step), finished or not."""


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

    def engine(self) -> Engine | None:
        """The runtime's continuous-batching engine; None: it batches statically."""
        return None

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
