"""Converted model directories, built once per (model digest, recipe) and reused."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".onnx_data", ".xml")


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
    """Tokenizer and config files (every file but weights) a converted model directory
    needs next to its own weights; files the conversion wrote are kept."""
    for path in source.iterdir():
        if path.is_file() and path.suffix not in WEIGHT_SUFFIXES and not (
                dest / path.name).exists():
            shutil.copy2(path, dest / path.name)


def dir_bytes(directory: Path, suffixes: tuple[str, ...]) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.suffix in suffixes)
