"""Generation through transformers' `generate` (torch, and optimum's ORT and OpenVINO models).

optimum's ORTModelForCausalLM and OVModelForCausalLM inherit the same `generate`, so all
three decode with the same logic and are timed through the same streamer hook: generate
calls `streamer.put` once with the prompt, then once per decoding step with that step's
tokens, already copied to the host.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from optbench.backends.lm.base import CausalLM, Generation, OnToken

# Plain greedy decoding whatever a model's generation_config asks for, on every runtime.
NEUTRAL = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}


@functools.cache
def _streamer_class() -> type:
    """Defined on first use (transformers is imported lazily), then reused by every call."""
    from transformers.generation.streamers import BaseStreamer

    class StepStreamer(BaseStreamer):
        """Counts decoding steps and announces each one; the prompt's put is skipped."""

        def __init__(self, on_token: OnToken) -> None:
            self.on_token = on_token
            self.prompt_seen = False
            self.steps = 0

        def put(self, value: Any) -> None:
            if not self.prompt_seen:
                self.prompt_seen = True
                return
            self.steps += 1
            self.on_token()

        def end(self) -> None:
            pass

    return StepStreamer


def step_streamer(on_token: OnToken) -> Any:
    return _streamer_class()(on_token)


def pad_token_id(tokenizer: Any) -> int | None:
    """The pad id, else end-of-sequence: without one, transformers logs a warning on every
    `generate` call, inside the timed windows."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
        else tokenizer.eos_token_id


class HFGenerator(CausalLM):
    """Any model with transformers' GenerationMixin (`generate`) and `.logits` outputs."""

    def __init__(self, model: Any, path: str, device: str = "cpu",
                 pad_token_id: int | None = None, info: dict[str, Any] | None = None) -> None:
        self.model = model
        self.path = path
        self.device = device
        self.pad_token_id = pad_token_id
        self.info = info or {}

    def _tensor(self, ids: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)).to(self.device)

    def generate(self, prompts: np.ndarray, new_tokens: int, on_token: OnToken) -> Generation:
        import torch

        ids = self._tensor(prompts)
        streamer = step_streamer(on_token)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                pad_token_id=self.pad_token_id, streamer=streamer, **NEUTRAL)
        return Generation(out[:, prompts.shape[1]:].cpu().numpy(), streamer.steps)

    def nll(self, ids: np.ndarray) -> np.ndarray:
        import torch

        from optbench.workloads.text import nll_from_logits

        x = self._tensor(ids)
        with torch.inference_mode():
            logits = self.model(input_ids=x, attention_mask=torch.ones_like(x)).logits
        return nll_from_logits(logits.float().cpu().numpy(), ids)

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, **self.info}
