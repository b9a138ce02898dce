"""Text that ships with Python, split by document into training and held-out parts.

`pydocs`: the reference documentation in `pydoc_data.topics` plus the docstrings of every
top-level standard-library module. Documents are assigned to the held-out part by a hash
of their name, so the split is the same on every machine and for every tokenizer; the
text itself follows the Python version, and its digest is recorded with every run.
"""

from __future__ import annotations

import ast
import hashlib
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

HELDOUT_EVERY = 10  # one document in ten is held out (by name hash)
TEXT_SUFFIXES = (".txt", ".md", ".rst")


@dataclass(frozen=True)
class Document:
    name: str
    text: str

    @property
    def heldout(self) -> bool:
        h = int(hashlib.sha256(self.name.encode()).hexdigest()[:8], 16)
        return h % HELDOUT_EVERY == 0


def _docstrings(path: Path) -> str:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return ""
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    found = [ast.get_docstring(n) for n in ast.walk(tree) if isinstance(n, nodes)]
    return "\n\n".join(d for d in found if d)


@cache
def pydocs() -> tuple[Document, ...]:
    """The documents of the `pydocs` corpus, in a fixed order."""
    from pydoc_data.topics import topics

    docs = [Document(f"topics/{k}", topics[k]) for k in sorted(topics)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.glob("*.py")):
        text = _docstrings(path)
        if len(text) > 200:
            docs.append(Document(f"stdlib/{path.stem}", text))
    return tuple(docs)


def text_files(root: Path) -> tuple[Document, ...]:
    """A user's text: one file, or every .txt/.md/.rst file under a directory (all held out)."""
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file())
    return tuple(Document(str(p), p.read_text(encoding="utf-8", errors="replace"))
                 for p in files)


def split(docs: tuple[Document, ...]) -> tuple[list[Document], list[Document]]:
    """(training, held-out) documents."""
    return [d for d in docs if not d.heldout], [d for d in docs if d.heldout]


def token_stream(tokenizer: Any, texts: list[str]) -> np.ndarray:
    """All texts as one id stream, each document followed by the end-of-sequence token."""
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
    return np.asarray(ids, dtype=np.int64)


def digest(docs: tuple[Document, ...]) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(d.name.encode())
        h.update(d.text.encode())
    return h.hexdigest()[:16]
