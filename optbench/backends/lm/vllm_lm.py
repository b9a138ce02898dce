"""vLLM offline engine (`LLM` + `SamplingParams`): continuous batching on NVIDIA GPUs.

Written against vLLM's documented offline API (vllm.LLM, vllm.SamplingParams,
vllm.inputs.TokensPrompt, RequestOutput.metrics, prompt_logprobs); not run here (no GPU
wheel installs on this project's CPU machines). What differs from the other runtimes:
- offline `generate` does not stream, so TTFT and TPOT come from vLLM's own per-request
  metrics (engine clock), labelled as such; `disable_log_stats=False` is required, as the
  offline LLM turns stats off by default and `metrics` is then None;
- the dtype is passed explicitly: "auto" would turn a float32 checkpoint into float16;
- perplexity comes from `prompt_logprobs` (the actual next token is always included);
- `max_num_seqs` is the concurrency: the requests of one call run as one continuous batch;
  TTFT is per request (queueing behind the others included), where the streaming runtimes
  give one TTFT per call (every request of a static batch gets its first token together);
- under a serving scenario, `engine()` hands the serving worker the LLM object's own
  LLMEngine (`add_request` / `step` / `has_unfinished_requests` / `abort_request`), so
  requests join the running batch as they arrive and every step's tokens are seen as they
  come (continuous batching, timed on our clock like the streaming runtimes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.backends.lm.base import CausalLM, Generation, OnToken, TokenEvent
from optbench.errors import Unavailable

if TYPE_CHECKING:
    from optbench.backends.base import LoadContext

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# Our engine request ids, apart from the LLM object's own ("0", "1", ... from its counter).
REQUEST_PREFIX = "optbench-"


# RequestOutput.metrics is filled from 0.11.1 (0.11.0 never sets it); earlier TTFT and TPOT
# would be silently empty
MIN_VERSION = (0, 11, 1)


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def sampling_params(new_tokens: int, **extra: Any) -> Any:
    """Greedy, exactly `new_tokens` tokens; neutral penalties, as vLLM may take defaults
    from the model's generation_config. Token ids only: detokenizing (on by default) is
    text nobody reads, done inside the timed call."""
    from vllm import SamplingParams

    return SamplingParams(temperature=0.0, max_tokens=new_tokens, min_tokens=new_tokens,
                          ignore_eos=True, repetition_penalty=1.0, detokenize=False, **extra)


def tokens_prompt(row: np.ndarray) -> Any:
    from vllm.inputs import TokensPrompt

    return TokensPrompt(prompt_token_ids=[int(t) for t in row])


def request_times(outputs: list[Any]) -> tuple[list[float] | None, list[float] | None]:
    """(TTFT, TPOT) per request from RequestOutput.metrics, V1 or V0 engine shape.

    V1 (RequestStateStats): first_token_latency, and first/last_token_ts on the engine's
    monotonic clock. V0 (RequestMetrics): arrival_time, first_token_time, last_token_time.
    None when the engine kept no metrics.
    """
    ttft: list[float] = []
    tpot: list[float] = []
    for out in outputs:
        m = out.metrics
        if m is None:
            return None, None
        n = len(out.outputs[0].token_ids)
        if getattr(m, "first_token_latency", None) is not None:  # V1
            ttft.append(float(m.first_token_latency))
            first, last = m.first_token_ts, m.last_token_ts
        elif getattr(m, "first_token_time", None) is not None:  # V0
            ttft.append(float(m.first_token_time - m.arrival_time))
            first, last = m.first_token_time, m.last_token_time
        else:
            return None, None
        if n > 1:
            tpot.append(float(last - first) / (n - 1))
    return ttft, tpot


class VllmLM(CausalLM):
    """VllmBackend's lm_loader (config: a VllmConfig; `max_num_seqs` defaults to the
    requests of one call, `ctx.batch_size`)."""

    def __init__(self, artifact: ModelArtifact, ctx: LoadContext, config: Any) -> None:
        import vllm
        from vllm import LLM

        if version_tuple(vllm.__version__) < MIN_VERSION:
            raise Unavailable(f"vLLM {vllm.__version__} returns no request metrics from offline "
                              "generate (TTFT and TPOT would be empty): use 0.11.1 or newer "
                              "(docker/constraints-vllm.txt pins 0.33.0)")
        if artifact.quantization:
            # In-flight 4-bit was bitsandbytes: NF4 in blocks of 64 with double-quantized
            # scales, not the woq transform's int4 in groups of 32, and gone since vLLM 0.28.
            raise Unavailable(f"vLLM has no in-flight {artifact.quantization}: its one "
                              "in-flight 4-bit scheme was bitsandbytes NF4 (blocks of 64), "
                              "another quantization than the woq transform's, removed in "
                              "vLLM 0.28; give a pre-quantized checkpoint (AWQ, GPTQ) instead")
        self.max_num_seqs = config.max_num_seqs or ctx.batch_size
        self.settings = {
            "dtype": DTYPES[artifact.precision], "seed": 0, "max_num_seqs": self.max_num_seqs,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "enforce_eager": config.enforce_eager, "enable_prefix_caching": False,
            "disable_log_stats": False,
        }
        if config.max_model_len:
            self.settings["max_model_len"] = config.max_model_len
        # nothing passed as None: EngineArgs takes its defaults only from absent keys
        # (load_format=None is a validation error in every release from 0.11 on)
        self.llm = LLM(model=artifact.path, tokenizer=artifact.path, **self.settings)
        self._engine: VllmEngine | None = None
        self.path = f"vLLM offline engine, {artifact.precision}"

    @staticmethod
    def _prompts(ids: np.ndarray) -> list[Any]:
        return [tokens_prompt(row) for row in ids]

    def generate(self, prompts: np.ndarray, new_tokens: int, on_token: OnToken) -> Generation:
        outputs = self.llm.generate(self._prompts(prompts), sampling_params(new_tokens),
                                    use_tqdm=False)
        rows = [list(o.outputs[0].token_ids) for o in outputs]
        # a request cut short (e.g. by max_model_len): every row keeps the shortest length,
        # so the loop counts only tokens every request produced and reports a short call
        shortest = min(len(r) for r in rows)
        tokens = np.array([r[:shortest] for r in rows], dtype=np.int64)
        ttft, tpot = request_times(outputs)
        return Generation(tokens, None, ttft, tpot)

    def nll(self, ids: np.ndarray) -> np.ndarray:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=1,
                                repetition_penalty=1.0, detokenize=False)
        outputs = self.llm.generate(self._prompts(ids), params, use_tqdm=False)
        rows = []
        for row, out in zip(ids, outputs):
            logprobs = out.prompt_logprobs  # entry 0 is None: the first token has no context
            rows.append([-float(logprobs[i][int(row[i])].logprob) for i in range(1, len(row))])
        return np.asarray(rows, dtype=np.float64)

    def engine(self) -> VllmEngine:
        """The LLM object's own engine (no second copy of the weights on the GPU)."""
        if self._engine is None:
            self._engine = VllmEngine(self.llm.llm_engine)
        return self._engine

    def close(self) -> None:
        self.llm = self._engine = None

    def describe(self) -> dict[str, Any]:
        import vllm

        return {"path": self.path, "runtime": f"vllm {vllm.__version__}",
                "engine_settings": dict(self.settings),
                "concurrency": f"max_num_seqs={self.max_num_seqs}"}


class VllmEngine:
    """vLLM's LLMEngine fed request by request (the `Engine` contract).

    `step()` returns a RequestOutput for each request the iteration advanced, its
    `outputs[0].token_ids` cumulative (RequestOutputKind.CUMULATIVE, asked for explicitly):
    the new tokens are the growth since the last one seen. Used from one thread only,
    as LLMEngine is not thread-safe.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._seen: dict[str, int] = {}  # our unfinished requests: tokens seen so far

    def add(self, request_id: int, prompt_ids: np.ndarray, new_tokens: int) -> None:
        from vllm.sampling_params import RequestOutputKind

        key = f"{REQUEST_PREFIX}{request_id}"
        params = sampling_params(new_tokens, output_kind=RequestOutputKind.CUMULATIVE)
        self.engine.add_request(key, tokens_prompt(prompt_ids), params)
        self._seen[key] = 0

    def step(self) -> list[TokenEvent]:
        events = []
        for out in self.engine.step():
            seen = self._seen.get(out.request_id)
            if seen is None:  # not one of ours
                continue
            ids = list(out.outputs[0].token_ids)
            new = max(0, len(ids) - seen)
            if not new and not out.finished:
                continue
            self._seen[out.request_id] = len(ids)
            if out.finished:
                del self._seen[out.request_id]
            events.append(TokenEvent(
                int(out.request_id.removeprefix(REQUEST_PREFIX)), new,
                first=seen == 0 and new > 0, finished=bool(out.finished),
                token_ids=np.asarray(ids, dtype=np.int64) if out.finished else None))
        return events

    def has_unfinished(self) -> bool:
        return bool(self.engine.has_unfinished_requests())

    def abort(self, request_ids: list[int]) -> None:
        keys = [f"{REQUEST_PREFIX}{i}" for i in request_ids]
        self.engine.abort_request(keys)  # a list: V1 and V0 both take one
        for key in keys:
            self._seen.pop(key, None)
