"""Text generation: prompts from held-out text, perplexity, and fidelity of greedy tokens.

Inputs are prompts of exactly `prompt_tokens` tokens cut from held-out documents (so a
batch needs no padding), and every request generates exactly `new_tokens` tokens (greedy,
end-of-sequence suppressed until then), so token counts are known and comparable. Quality:
- perplexity on held-out windows (lower is better; the headline),
- greedy-token agreement with the fp32 reference model on the same prompts: the share of
  positions with the same token, and the share generated before the first difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from optbench.errors import RecipeError, UsageError, closest
from optbench.results.schema import Metric
from optbench.workloads.base import Quality, Workload

DATASETS = ("pydocs", "textfile:<path>")
PROMPT_TOKENS = 32
NEW_TOKENS = 32
PROMPTS = 32
PERPLEXITY_WINDOWS = 64


@dataclass
class TextOutputs:
    """What the accuracy pass of a text run produces (aligned with the prompts)."""

    tokens: np.ndarray  # (prompts, new_tokens) generated ids
    nll: np.ndarray  # (windows, window_len - 1) negative log-likelihood per predicted token


class TextGeneration(Workload):
    """Datasets: `pydocs` (held-out documents of text shipped with Python) or
    `textfile:<path>` (a text file, or a directory of .txt/.md/.rst files)."""

    name = "text"
    sample_unit = "token"
    generative: ClassVar[bool] = True

    @classmethod
    def validate_dataset(cls, dataset: str, path: str) -> None:
        if dataset.startswith("textfile:"):
            root = Path(dataset.partition(":")[2]).expanduser()
            if not root.exists():
                raise RecipeError(path, f"textfile path does not exist: {root}")
            return
        if dataset != "pydocs":
            raise RecipeError(path, f"unknown text dataset {dataset!r}; choose one of "
                              f"{', '.join(DATASETS)}", closest(dataset, ("pydocs", "textfile:")))

    @property
    def dataset(self) -> str:
        return self.spec.dataset or "pydocs"

    @property
    def prompt_tokens(self) -> int:
        return self.spec.prompt_tokens or PROMPT_TOKENS

    @property
    def new_tokens(self) -> int:
        return self.spec.new_tokens or NEW_TOKENS

    @cached_property
    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        if not self.artifact.path:
            raise UsageError("the text workload needs a Hugging Face model directory")
        return AutoTokenizer.from_pretrained(self.artifact.path)

    @cached_property
    def documents(self) -> list[Any]:
        from optbench.workloads.corpus import pydocs, split, text_files

        if self.dataset.startswith("textfile:"):
            docs = list(text_files(Path(self.dataset.partition(":")[2]).expanduser()))
        else:
            docs = split(pydocs())[1]
        if not docs:
            raise UsageError(f"dataset {self.dataset} has no text")
        return docs

    @cached_property
    def stream(self) -> np.ndarray:
        """The held-out text as one token stream, documents separated by end-of-sequence."""
        from optbench.workloads.corpus import token_stream

        return token_stream(self.tokenizer, [d.text for d in self.documents])

    @cached_property
    def context(self) -> int | None:
        """The model's context length from its config (None when it does not say)."""
        import json

        config = json.loads((Path(self.artifact.path) / "config.json").read_text())
        limit = config.get("max_position_embeddings") or config.get("n_positions")
        return int(limit) if limit else None

    @property
    def window(self) -> int:
        """Perplexity window: the model's context, at most 128 tokens."""
        return min(128, self.context or 128)

    def check(self) -> None:
        """Requests must fit the model's context, and the text must hold them."""
        needed = self.prompt_tokens + self.new_tokens
        if self.context is not None and needed > self.context:
            raise UsageError(f"prompt_tokens {self.prompt_tokens} + new_tokens "
                             f"{self.new_tokens} = {needed} exceed the model's context of "
                             f"{self.context} tokens")
        if len(self.stream) < needed + 1:
            raise UsageError(f"dataset {self.dataset}: {len(self.stream)} tokens of text, too "
                             f"little for one prompt of {self.prompt_tokens} tokens")
        self.perplexity_windows  # noqa: B018 - raises when there is not one window of text

    @cached_property
    def perplexity_windows(self) -> np.ndarray:
        n = min(PERPLEXITY_WINDOWS, len(self.stream) // self.window)
        if n < 1:
            raise UsageError(f"dataset {self.dataset}: too little text for one perplexity "
                             f"window of {self.window} tokens")
        return self.stream[: n * self.window].reshape(n, self.window)

    @property
    def prompt_count(self) -> int:
        return self.spec.eval_samples or min(self.eval_cap or PROMPTS, PROMPTS)

    def eval_inputs(self) -> np.ndarray:
        """Prompts of `prompt_tokens` tokens, spread evenly over the held-out stream."""
        count, length = self.prompt_count, self.prompt_tokens
        self.check()
        starts = np.linspace(0, len(self.stream) - length - 1, count).round().astype(int)
        return np.stack([self.stream[s:s + length] for s in starts]).astype(np.int64)

    def calibration_inputs(self) -> list[np.ndarray]:
        return []  # LLM quantization here is weight-only or dynamic: nothing to calibrate

    def quality(self, outputs: Any, reference: np.ndarray | None) -> Quality:
        return text_quality(outputs, reference)

    def describe(self) -> dict[str, Any]:
        from optbench.workloads.corpus import digest, pydocs

        info = {
            **super().describe(),
            "dataset": self.dataset,
            "prompts": self.prompt_count,
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "decoding": "greedy, exactly new_tokens per request (end-of-sequence suppressed)",
            "perplexity_windows": int(len(self.perplexity_windows)),
            "perplexity_window_tokens": self.window,
            "heldout_documents": len(self.documents),
        }
        if self.dataset == "pydocs":
            info["source"] = f"held-out pydocs documents (corpus digest {digest(pydocs())})"
        return info


def text_quality(outputs: TextOutputs, reference: np.ndarray | None) -> Quality:
    nll = outputs.nll
    metrics = [
        Metric("perplexity", float(math.exp(nll.mean())), "ratio"),
        Metric("nll_per_token", float(nll.mean()), "nats"),
        Metric("perplexity_tokens", float(nll.size), "tokens"),
    ]
    if reference is not None:
        same = outputs.tokens == reference
        first_diff = np.where(same.all(1), same.shape[1], (~same).argmax(1))
        metrics += [
            Metric("token_agreement", float(same.mean()), "fraction"),
            Metric("prefix_agreement", float(first_diff.mean() / same.shape[1]), "fraction"),
            Metric("identical_generations", float(same.all(1).mean()), "fraction"),
        ]
    # equal windows: perplexity is exp of the mean of the windows' mean NLL
    return Quality(tuple(metrics), "perplexity", higher_is_better=False,
                   outcomes={"perplexity": nll.mean(axis=1)})


def nll_from_logits(logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per-token negative log-likelihood of ids[:, 1:] under logits[:, :-1] (float64 math)."""
    z = logits[:, :-1].astype(np.float64)
    z -= z.max(-1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(-1))
    picked = np.take_along_axis(z, ids[:, 1:, None], -1)[..., 0]
    return log_norm - picked
