"""Distillation of a causal language model into a narrower one, on the teacher's corpus.

Student: the teacher's own architecture and tokenizer, with attention heads and the MLP
scaled by `width` (same depth and vocabulary), from scratch. Data: random windows of the
`pydocs` training documents (never the held-out ones the workload judges on). Loss per
token: alpha * T^2 * KL(student/T || teacher/T) + (1 - alpha) * next-token cross-entropy.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from optbench.artifact import ModelArtifact
from optbench.transforms.training import MeteredSession, TrainingRecord, train_once

SEQ_LEN = 128
BATCH = 16


def narrower_config(config: Any, width: float) -> Any:
    """The teacher's config with fewer heads (same head size) and a narrower MLP."""
    heads = max(1, round(config.num_attention_heads * width))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    wanted = max(1, round(kv_heads * heads / config.num_attention_heads))
    student = config.__class__.from_dict(config.to_dict())
    student.num_attention_heads = heads
    # grouped-query attention: key/value heads must divide the attention heads
    student.num_key_value_heads = max(d for d in range(1, heads + 1)
                                      if heads % d == 0 and d <= wanted)
    student.hidden_size = heads * head_dim
    student.head_dim = head_dim
    student.intermediate_size = max(32, round(config.intermediate_size * width / 32) * 32)
    return student


def kd_lm_loss(teacher: Any, temperature: float, alpha: float) -> Any:
    import torch
    import torch.nn.functional as F

    def loss(student: Any, ids: Any) -> Any:
        with torch.no_grad():
            t = teacher(input_ids=ids).logits[:, :-1]
        s = student(input_ids=ids).logits[:, :-1]
        vocab = s.shape[-1]
        soft = F.kl_div(F.log_softmax(s / temperature, -1).reshape(-1, vocab),
                        F.softmax(t / temperature, -1).reshape(-1, vocab),
                        reduction="batchmean") * temperature**2
        hard = F.cross_entropy(s.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        return alpha * soft + (1 - alpha) * hard

    return loss


def distill_lm(artifact: ModelArtifact, derived: ModelArtifact, cfg: Any,
               ctx: Any) -> ModelArtifact:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from optbench.models.tiny_llama import lm_batches, train_lm
    from optbench.workloads.corpus import pydocs, split, token_stream

    def make(session: MeteredSession, record: TrainingRecord, out: Path) -> dict[str, Any]:
        tokenizer = AutoTokenizer.from_pretrained(artifact.path)
        teacher = AutoModelForCausalLM.from_pretrained(artifact.path, dtype=torch.float32).eval()
        torch.manual_seed(cfg.seed)
        student = AutoModelForCausalLM.from_config(narrower_config(teacher.config, cfg.width))
        stream = token_stream(tokenizer, [d.text for d in split(pydocs())[0]])
        record.budget_j = cfg.energy_budget_j

        def over_budget(step: int) -> bool:
            if cfg.energy_budget_j is None or step % 10:
                return False
            spent = session.spent_j()
            if spent is not None and spent >= cfg.energy_budget_j:
                record.budget_exhausted = True
                record.notes.append(f"energy budget {cfg.energy_budget_j:g} J spent after "
                                    f"{step} steps")
                return True
            return False

        steps = cfg.steps
        record.steps = train_lm(student, lm_batches(stream, SEQ_LEN, BATCH, steps, cfg.seed),
                                steps, cfg.lr, kd_lm_loss(teacher, cfg.temperature, cfg.alpha),
                                label="distill", stop=over_budget)
        student.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
        return {"parameters": int(student.num_parameters()),
                "tokens_seen": record.steps * BATCH * SEQ_LEN}

    stored, directory = train_once(ctx, derived.digest, "distill", make)
    facts = stored["facts"]
    info = {**artifact.info, "parameters": facts["parameters"],
            "student": f"{artifact.name} x{cfg.width:g} (heads and MLP)",
            "training": [*artifact.info.get("training", []), stored["record"]]}
    info.pop("file_bytes", None)
    return replace(derived, path=str(directory / "model"), weights_trained=True, info=info)
