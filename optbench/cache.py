"""Where optbench keeps what it builds: trained models, exports, quantized models, references.

Everything here can be rebuilt; entries are keyed by content digests so a stale entry is
never reused for a different model.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$OPTBENCH_CACHE`, else `$XDG_CACHE_HOME/optbench`, else `~/.cache/optbench`."""
    if os.environ.get("OPTBENCH_CACHE"):
        return Path(os.environ["OPTBENCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "optbench"


def cache_dir(*parts: str) -> Path:
    """A subdirectory of the cache root, created on first use."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
