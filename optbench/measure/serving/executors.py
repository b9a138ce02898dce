"""What the serving worker does with one batch: a vision backend's forward pass, or a
text generator's `generate`. Each returns one output per request and keeps it to compare
with the closed-loop accuracy pass's output for the same input (`agreement()`), so a
serving run says whether batching, padding or the cache changed any answer. The
comparison runs after the point, off the serving path: right after a wait, even a small
numpy comparison cost ~80 us on the 2-core VM (docs/serving.md).

`probe` tries every batch size up to max_batch: a runtime loaded for one static shape
refuses the others, and is then fed padded batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Served answers kept per run for the comparison; beyond this many, the rest go unchecked.
MAX_CHECKED = 50_000


class Agreement:
    """Served answers kept on the serving path (one list append), compared later."""

    def __init__(self) -> None:
        self._kept: list[tuple[Sequence[int], Any]] = []
        self._count = 0
        self.compared = self.agreed = 0

    def check(self, indices: Sequence[int], outputs: Any) -> None:
        if self._count < MAX_CHECKED:
            self._kept.append((indices, outputs))
            self._count += len(indices)

    def agreement(self) -> tuple[int, int]:
        """(agreed, compared) over every answer kept so far."""
        kept, self._kept = self._kept, []
        for indices, outputs in kept:
            self.compared += len(indices)
            self.agreed += self.agree(indices, outputs)
        return self.agreed, self.compared

    def agree(self, indices: Sequence[int], outputs: Any) -> int:
        raise NotImplementedError


class VisionExecutor(Agreement):
    """Stacks the requested inputs into one batch; `pad_to` pads a short batch for a
    runtime loaded for one static batch size (the padding rows are computed, then
    discarded: what a static-shape deployment pays)."""

    tokens_per_request = 1

    def __init__(self, backend: Any, inputs: np.ndarray, reference: np.ndarray,
                 pad_to: int | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.inputs = inputs
        self.reference_top1 = reference.argmax(axis=-1)
        self.pad_to = pad_to

    def run(self, indices: Sequence[int], on_first_token: Callable[[], None]) -> list[Any]:
        idx = np.asarray(indices)
        if self.pad_to and len(idx) < self.pad_to:
            idx = np.resize(idx, self.pad_to)  # repeats the batch's own rows
        native = self.backend.infer(self.backend.prepare(self.inputs[idx]))
        self.backend.synchronize()
        outputs = self.backend.to_numpy(native)[:len(indices)]
        self.check(indices, outputs)
        return list(outputs)

    def agree(self, indices: Sequence[int], outputs: Any) -> int:
        top1 = np.asarray(outputs).reshape(len(indices), -1).argmax(axis=-1)
        return int((top1 == self.reference_top1[np.asarray(indices)]).sum())

    def probe(self, max_batch: int) -> bool:
        """Whether every batch size 1..max_batch runs and returns as many rows (this also
        warms each shape a compiling runtime specialises on)."""
        for n in range(1, max_batch + 1):
            try:
                native = self.backend.infer(self.backend.prepare(self.inputs[np.arange(n)
                                                                              % len(self.inputs)]))
                self.backend.synchronize()
                if len(self.backend.to_numpy(native)) != n:
                    return False
            except Exception:  # noqa: BLE001 - a static-shape runtime refuses other sizes
                return False
        return True


class TextExecutor(Agreement):
    """One `generate` call for the batch's prompts, `new_tokens` each; the first decoding
    step's callback marks every request's first token. `pad_to` repeats the batch's own
    prompts up to a static batch size (all prompts have the same length, so no attention
    mask differs and the padding rows change no answer beyond the float noise any change
    of batch shape may bring).

    A continuous-batching worker (serving.continuous) uses only its prompts, `new_tokens`
    and `check`: requests reach the runtime's engine one by one, not through `run`.
    """

    def __init__(self, lm: Any, prompts: np.ndarray, reference_tokens: np.ndarray,
                 new_tokens: int, pad_to: int | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.prompts = prompts
        self.reference = reference_tokens
        self.new_tokens = new_tokens
        self.tokens_per_request = new_tokens
        self.pad_to = pad_to

    def run(self, indices: Sequence[int], on_first_token: Callable[[], None]) -> list[Any]:
        idx = np.asarray(indices)
        if self.pad_to and len(idx) < self.pad_to:
            idx = np.resize(idx, self.pad_to)
        fired = False

        def on_token() -> None:
            nonlocal fired
            if not fired:
                fired = True
                on_first_token()

        generation = self.lm.generate(self.prompts[idx], self.new_tokens, on_token)
        self.lm.synchronize()
        tokens = generation.tokens[:len(indices)]
        if not fired:  # a runtime that cannot stream: first token known only at the end
            on_first_token()
        self.tokens_per_request = int(tokens.shape[1])
        self.check(indices, tokens)
        return list(tokens)

    def agree(self, indices: Sequence[int], tokens: Any) -> int:
        """The served generations equal to the quality pass's for the same prompt."""
        return int(sum(np.array_equal(t, self.reference[i]) for t, i in zip(tokens, indices)))

    def probe(self, max_batch: int) -> bool:
        """Whether every batch size 1..max_batch generates one row per prompt."""
        for n in range(1, max_batch + 1):
            try:
                generation = self.lm.generate(self.prompts[np.arange(n) % len(self.prompts)],
                                              self.new_tokens, lambda: None)
                if generation.tokens.shape[0] != n:
                    return False
            except Exception:  # noqa: BLE001 - as above
                return False
        return True
