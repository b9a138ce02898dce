"""Helpers every torch-based model builder shares: digests, facts, artifacts, saving."""

from __future__ import annotations

import hashlib
from typing import Any

from optbench.artifact import ModelArtifact
from optbench.cache import atomic_path


def state_digest(module: Any, salt: str = "") -> str:
    """sha256 over parameter and buffer names, shapes, dtypes and bytes (first 20 hex)."""
    import torch

    digest = hashlib.sha256(salt.encode())
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def module_facts(module: Any) -> dict[str, Any]:
    """Parameter count, non-zero parameters and parameter bytes of a torch module."""
    params = list(module.parameters())
    count = sum(p.numel() for p in params)
    nonzero = sum(int((p != 0).sum()) for p in params)
    size = sum(p.numel() * p.element_size() for p in params)
    return {"parameters": count, "nonzero_parameters": nonzero, "parameter_bytes": size}


def is_exported(module: Any) -> bool:
    """True for the graph module of a torch.export program (pruned or QAT models)."""
    import torch

    return isinstance(module, torch.fx.GraphModule)


def eval_mode(module: Any) -> Any:
    """`module.eval()`, except for exported graph modules (they refuse it, and are already
    captured in eval mode)."""
    try:
        module.eval()
    except NotImplementedError:
        pass
    return module


def save_state(module: Any, path: Any) -> None:
    """torch.save of the state_dict through a temporary file, so a crash leaves no half file."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(module.state_dict(), tmp)


def torch_artifact(card: Any, module: Any, weights: str, trained: bool,
                   info: dict[str, Any] | None = None) -> ModelArtifact:
    """The ModelArtifact of a card's torch module in eval mode, digest and facts included."""
    module.eval()
    return ModelArtifact(
        name=card.name,
        format="torch",
        module=module,
        input_shape=card.input_shape,
        num_outputs=card.num_outputs,
        weights=weights,
        weights_trained=trained,
        digest=state_digest(module, card.name),
        mean=card.mean,
        std=card.std,
        info={**module_facts(module), **(info or {})},
    )
