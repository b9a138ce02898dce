"""Converted model directories, built once per (model digest, recipe) and reused."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "generation_config.json", "config.json")


def built_dir(target: Path, build: Callable[[Path], None]) -> Path:
    """`target`, made by `build(tmp)` into a temporary directory renamed into place (so an
    interrupted conversion never leaves a half-written model behind)."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        build(tmp)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def copy_side_files(source: Path, dest: Path) -> None:
    """Tokenizer and config files a converted model directory needs next to its weights."""
    for name in TOKENIZER_FILES:
        if (source / name).is_file() and not (dest / name).is_file():
            shutil.copy2(source / name, dest / name)


def dir_bytes(directory: Path, suffixes: tuple[str, ...]) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.suffix in suffixes)
