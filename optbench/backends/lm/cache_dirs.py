"""Converted model directories (built once per model digest and recipe with
`optbench.cache.built_dir`): the files they need besides weights, and their size."""

from __future__ import annotations

import shutil
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".onnx_data", ".xml")


def copy_side_files(source: Path, dest: Path) -> None:
    """Tokenizer and config files (every file but weights) a converted model directory
    needs next to its own weights; files the conversion wrote are kept."""
    for path in source.iterdir():
        if path.is_file() and path.suffix not in WEIGHT_SUFFIXES and not (
                dest / path.name).exists():
            shutil.copy2(path, dest / path.name)


def dir_bytes(directory: Path, suffixes: tuple[str, ...]) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.suffix in suffixes)
