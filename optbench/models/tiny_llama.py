"""tiny-llama: a byte-level BPE tokenizer and a small Llama, both trained here on `pydocs`.

The corpus is text that ships with Python (see optbench.workloads.corpus). Training takes
a few minutes on 2 CPU cores and is cached under the cache directory by a digest of the
training recipe and the corpus, as a standard Hugging Face directory (save_pretrained), so
every runtime loads it the way it loads any local model. Perplexity on the held-out
documents is then a real quality figure: variants that damage the weights move it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from optbench.artifact import ModelArtifact
from optbench.cache import built_dir
from optbench.models import ModelCard

log = logging.getLogger(__name__)
SPECIAL = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>"}
DEFAULTS: dict[str, Any] = {
    "vocab_size": 4096, "hidden_size": 256, "intermediate_size": 704, "layers": 4, "heads": 4,
    "context": 256, "seq_len": 128, "batch_size": 16, "steps": 600, "lr": 3e-3, "seed": 0,
}
TRAINING_FILE = "optbench_training.json"


def recipe(card: ModelCard) -> dict[str, Any]:
    unknown = set(card.options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown tiny-llama option(s) {sorted(unknown)}; "
                         f"valid: {', '.join(DEFAULTS)}")
    return {**DEFAULTS, **card.options}


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(iter(texts), vocab_size=vocab_size, min_frequency=2,
                            show_progress=False, special_tokens=list(SPECIAL.values()))
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, **SPECIAL)


def llama_config(tokenizer: Any, r: dict[str, Any], width: float = 1.0) -> Any:
    from transformers import LlamaConfig

    heads = max(1, round(r["heads"] * width))
    head_dim = r["hidden_size"] // r["heads"]
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=heads * head_dim,
        intermediate_size=max(32, round(r["intermediate_size"] * width / 32) * 32),
        num_hidden_layers=r["layers"], num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=r["context"], bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False)


def lm_batches(stream: np.ndarray, seq_len: int, batch_size: int, steps: int,
               seed: int) -> Any:
    """Random windows of the training stream, one (batch, seq_len) array per step."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        starts = rng.integers(0, len(stream) - seq_len, size=batch_size)
        yield np.stack([stream[s:s + seq_len] for s in starts])


def lr_at(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over 5% of the steps, then cosine decay to a tenth of the peak."""
    warm = max(1, steps // 20)
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def train_lm(model: Any, batches: Any, steps: int, lr: float, loss_fn: Any = None,
             label: str = "tiny-llama", stop: Any = None, curve: list[float] | None = None) -> int:
    """AdamW on causal-LM loss (or `loss_fn(model, ids)`) until `steps`, or until
    `stop(step)` says so; appends the mean loss of every tenth of the steps to `curve`.
    Returns the steps taken."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    curve = curve if curve is not None else []
    running = 0.0
    taken = 0
    every = max(1, steps // 10)
    for step, batch in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        ids = torch.from_numpy(batch)
        loss = loss_fn(model, ids) if loss_fn else model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        taken = step + 1
        running += float(loss.detach())
        if (step + 1) % every == 0:
            curve.append(round(running / every, 4))
            log.info("%s step %d/%d: loss %.3f", label, step + 1, steps, running / every)
            running = 0.0
        if stop is not None and stop(taken):
            break
    model.eval()
    return taken


def heldout_perplexity(model: Any, stream: np.ndarray, seq_len: int, windows: int = 32) -> float:
    import torch

    n = min(windows, len(stream) // seq_len)
    ids = torch.from_numpy(stream[: n * seq_len].reshape(n, seq_len))
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    return float(torch.exp(loss))


def cache_key(r: dict[str, Any], corpus_digest: str) -> str:
    blob = json.dumps({"recipe": r, "corpus": corpus_digest, "v": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_directory(card: ModelCard, target: Path) -> dict[str, Any]:
    """Train tokenizer and model; write a Hugging Face directory at `target` atomically."""
    import torch
    from transformers import LlamaForCausalLM

    from optbench.workloads.corpus import digest, pydocs, split, token_stream

    r = recipe(card)
    docs = pydocs()
    train_docs, heldout_docs = split(docs)
    started = time.monotonic()
    tokenizer = train_tokenizer([d.text for d in train_docs], r["vocab_size"])
    stream = token_stream(tokenizer, [d.text for d in train_docs])
    torch.manual_seed(r["seed"])
    model = LlamaForCausalLM(llama_config(tokenizer, r))
    log.info("training %s: %d parameters on %d tokens of pydocs, %d steps (cached afterwards)",
             card.name, model.num_parameters(), len(stream), r["steps"])
    curve: list[float] = []
    train_lm(model, lm_batches(stream, r["seq_len"], r["batch_size"], r["steps"], r["seed"]),
             r["steps"], r["lr"], label=card.name, curve=curve)
    seconds = time.monotonic() - started
    heldout = token_stream(tokenizer, [d.text for d in heldout_docs])
    record = {
        "recipe": r, "corpus": "pydocs", "corpus_digest": digest(docs),
        "train_documents": len(train_docs), "heldout_documents": len(heldout_docs),
        "train_tokens": int(len(stream)),
        "tokens_seen": r["steps"] * r["batch_size"] * r["seq_len"],
        "loss_curve": curve, "train_time_s": round(seconds, 1),
        "heldout_perplexity": round(heldout_perplexity(model, heldout, r["seq_len"]), 3),
        "parameters": int(model.num_parameters()),
    }

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / TRAINING_FILE).write_text(json.dumps(record, indent=1))

    built_dir(target, save, replace=True)  # a directory without TRAINING_FILE is redone
    return record


def build(card: ModelCard, weights: str | None, cache: Path) -> ModelArtifact:
    from optbench.models.external import load_hf_causal_lm
    from optbench.workloads.corpus import digest, pydocs

    if weights:
        raise ValueError("tiny-llama is trained here; for your own weights pass the Hugging "
                         "Face directory as the model (e.g. --model path/to/dir)")
    key = cache_key(recipe(card), digest(pydocs()))
    directory = cache / "models" / f"{card.name}-{key}"
    if (directory / TRAINING_FILE).is_file():
        record, trained = json.loads((directory / TRAINING_FILE).read_text()), "cached"
    else:
        directory.parent.mkdir(parents=True, exist_ok=True)
        record, trained = train_directory(card, directory), "now"
    artifact = load_hf_causal_lm(str(directory), name=card.name)
    source = (f"trained here on pydocs (corpus digest {record['corpus_digest']}), "
              f"{record['recipe']['steps']} steps, {record['tokens_seen']:,} tokens seen")
    return replace(artifact, weights=source, info={
        **artifact.info, "trained": trained, "train_time_s": record["train_time_s"],
        "heldout_perplexity_at_training": record["heldout_perplexity"]})

