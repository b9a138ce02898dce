"""Models: shipped cards (YAML, never weights) and bring-your-own models.

A model reference is one of:
- a card name (`optbench ls models`), e.g. `resnet50`, `mnist-cnn`;
- a card file `path/to/card.yaml`;
- an ONNX file `model.onnx`;
- a local Hugging Face directory (with config.json), or a hub id `org/name` where a hub
  or a local hub cache is reachable.
Cards are looked up in the package and in the directories of `$OPTBENCH_MODEL_PATH`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from optbench.errors import PluginNotFound, RecipeError, UsageError

CARD_DIR = Path(__file__).parent / "cards"
# Cards of optbench's own tests (hidden: true), found by path so that a recipe run in a
# child process can name them; models never import optbench.testing.
TEST_CARD_DIR = Path(__file__).parent.parent / "testing" / "cards"
CARD_KEYS = (
    "name", "task", "summary", "builder", "input_shape", "input_dtype", "num_outputs",
    "dataset", "mean", "std", "reference_quality", "weights", "requires", "hidden", "options",
    "student", "checkpoints",
)


@dataclass(frozen=True)
class ModelCard:
    """What a model is and how to build it; never the weights themselves."""

    name: str
    builder: str
    input_shape: tuple[int, ...]
    num_outputs: int
    task: str = "image-classification"
    summary: str = ""
    input_dtype: str = "float32"
    dataset: str = "synthetic"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    reference_quality: dict[str, Any] = field(default_factory=dict)
    weights: str = ""
    requires: tuple[str, ...] = ()
    hidden: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    student: str = ""
    # published checkpoints the builder accepts, file name -> what it is; the first is
    # downloaded into torch.hub's cache before a sweep when none is there (models/hub.py)
    checkpoints: dict[str, str] = field(default_factory=dict)
    path: str = ""


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference: `kind` is "card", "onnx" or "hf"."""

    ref: str
    kind: str
    card: ModelCard | None = None


def load_card(path: Path) -> ModelCard:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise RecipeError(str(path), "a model card must be a mapping")
    for key in data:
        if key not in CARD_KEYS:
            raise RecipeError(f"{path}:{key}",
                              f"unknown model card key; valid: {', '.join(CARD_KEYS)}")
    for key in ("name", "builder", "input_shape", "num_outputs"):
        if key not in data:
            raise RecipeError(f"{path}:{key}", "required in a model card")
    if not isinstance(data.get("checkpoints") or {}, dict):
        raise RecipeError(f"{path}:checkpoints", "a mapping of published file name (e.g. "
                          "resnet50-0676ba61.pth) to what it is")
    return ModelCard(
        name=data["name"],
        builder=data["builder"],
        input_shape=tuple(int(d) for d in data["input_shape"]),
        num_outputs=int(data["num_outputs"]),
        task=data.get("task", "image-classification"),
        summary=" ".join(str(data.get("summary", "")).split()),
        input_dtype=data.get("input_dtype", "float32"),
        dataset=data.get("dataset", "synthetic"),
        mean=tuple(float(v) for v in data.get("mean", ())),
        std=tuple(float(v) for v in data.get("std", ())),
        reference_quality=dict(data.get("reference_quality", {})),
        weights=" ".join(str(data.get("weights", "")).split()),
        requires=tuple(data.get("requires", ())),
        hidden=bool(data.get("hidden", False)),
        options=dict(data.get("options", {})),
        student=data.get("student", ""),
        checkpoints={str(k): " ".join(str(v).split())
                     for k, v in (data.get("checkpoints") or {}).items()},
        path=str(path),
    )


@cache
def _cards_in(directories: tuple[str, ...]) -> dict[str, ModelCard]:
    cards: dict[str, ModelCard] = {}
    for directory in directories:
        for path in sorted(Path(directory).glob("*.yaml")):
            card = load_card(path)
            cards.setdefault(card.name, card)
    return cards


def cards() -> dict[str, ModelCard]:
    """All known cards by name: `$OPTBENCH_MODEL_PATH` directories first, then shipped ones."""
    extra = [d for d in os.environ.get("OPTBENCH_MODEL_PATH", "").split(os.pathsep) if d]
    return _cards_in((*extra, str(CARD_DIR), str(TEST_CARD_DIR)))


def resolve_model(ref: str) -> ModelRef:
    """Resolve a model reference without building it; unknown names raise PluginNotFound."""
    known = cards()
    if ref in known:
        return ModelRef(ref, "card", known[ref])
    path = Path(ref).expanduser()
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UsageError(f"model card not found: {ref}")
        card = load_card(path)
        return ModelRef(str(path.resolve()), "card", card)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise UsageError(f"model file not found: {ref}")
        return ModelRef(str(path.resolve()), "onnx")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{ref} is a directory without config.json, not a Hugging Face model")
        return ModelRef(str(path.resolve()), "hf")
    if path.suffix in (".pt", ".pth", ".bin", ".safetensors"):
        raise UsageError(
            f"{ref}: a bare weights file has no architecture; write a model card that names a "
            "builder and pass the file as weights (see docs/models.md)"
        )
    if "/" in ref and not ref.startswith((".", "/")) and ref.count("/") == 1:
        return ModelRef(ref, "hf")
    visible = [name for name, card in known.items() if not card.hidden]
    raise PluginNotFound("model", ref, visible)


def check_model(resolved: ModelRef, weights: str | None = None) -> None:
    """What can be checked of a bring-your-own model before any run, cheaply and in the
    parent: an ONNX file parses and has one input of static per-sample shape; a local
    Hugging Face directory has a config, weights and (a causal LM) a tokenizer. Raises
    UsageError naming the file. Cards are their builders' business, except for downloads:
    a hub id is fetched into (or found in) the local hub cache here, and a card's published
    checkpoint (`checkpoints:`) into torch.hub's cache unless `weights` names a file, both
    in the parent: the children measure offline (run/netguard.py), so they must find them
    there. A checkpoint that cannot be had is one WARNING line (the builder then uses a
    random init); a corrupt one raises hub.ChecksumError."""
    if resolved.kind == "card" and resolved.card is not None:
        card = resolved.card
        if card.checkpoints and not weights:
            from optbench.models import hub

            found = hub.locate(card.checkpoints, fetch=True)
            if found.path is None:
                hub.notice_random_init(card.name, next(iter(card.checkpoints.values())),
                                       found.reason)
    elif resolved.kind == "onnx":
        from optbench.models.external import onnx_signature

        onnx_signature(Path(resolved.ref))
    elif resolved.kind == "hf":
        from optbench.models.external import check_hf_dir, local_hf_dir

        directory = local_hf_dir(resolved.ref)
        if directory is None:
            raise UsageError(f"{resolved.ref}: not a local directory, and no Hugging Face "
                             "hub or hub cache here has it (pass a directory, or set HF_HOME "
                             "to a cache)")
        check_hf_dir(directory)


def default_workload(ref: str) -> str:
    """The workload a model is judged by when a recipe does not say: from its card's task,
    or for a Hugging Face directory from its architecture."""
    resolved = resolve_model(ref)
    if resolved.card is not None:
        return "text" if resolved.card.task == "text-generation" else "vision"
    if resolved.kind == "hf":
        from optbench.models.external import is_causal_lm

        return "text" if is_causal_lm(resolved.ref) else "vision"
    return "vision"


def build_model(ref: str, weights: str | None, cache: Path,
                trainer: Any = None) -> Any:
    """Build the ModelArtifact for `ref` (imports the builder's heavy libraries). A builder
    that trains its model here takes `trainer` (models/classic.py `Trainer`: the run's
    meters around the training), so what training costs is measured like a transform's."""
    import importlib
    import inspect

    resolved = resolve_model(ref)
    if resolved.kind == "onnx":
        from optbench.models.external import load_onnx

        return load_onnx(Path(resolved.ref))
    if resolved.kind == "hf":
        from optbench.models.external import (
            is_causal_lm,
            load_hf_causal_lm,
            load_hf_image_classifier,
            local_hf_dir,
        )

        if local_hf_dir(resolved.ref) is None:
            raise UsageError(f"{ref}: not a local directory, and no Hugging Face hub or hub "
                             "cache here has it (pass a directory, or set HF_HOME to a cache)")
        if is_causal_lm(resolved.ref):  # a hub id is fetched into the local hub cache
            return load_hf_causal_lm(resolved.ref)

        return load_hf_image_classifier(resolved.ref)
    card = resolved.card
    assert card is not None
    module_name, _, func = card.builder.partition(":")
    builder = getattr(importlib.import_module(module_name), func)
    extra = {"trainer": trainer} if "trainer" in inspect.signature(builder).parameters else {}
    return builder(card, weights=weights, cache=cache, **extra)
