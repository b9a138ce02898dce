"""Where optbench keeps what it builds: trained models, exports, quantized models, references.

Everything here can be rebuilt; entries are keyed by content digests so a stale entry is
never reused for a different model.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def atomic_path(path: Path, companions: tuple[str, ...] = ()) -> Iterator[Path]:
    """A temporary sibling of `path` (same suffix) to write into; renamed over `path` when
    the block completes, removed when it fails, so a crash or a full disk never leaves a
    half-written file under the final name.

    `companions` are suffixes of files the writer puts next to it (an OpenVINO IR's .bin
    beside its .xml); they are moved first, so `path` appears last and means "complete".
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        for suffix in companions:
            tmp.with_suffix(suffix).replace(path.with_suffix(suffix))
        tmp.replace(path)
    except OSError as exc:
        # A write to an open file names no file, and the temporary name means nothing to
        # a user: the error names the file being written (`cannot write PATH: ...`).
        if exc.errno is not None and (exc.filename is None or str(exc.filename) == str(tmp)):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        for leftover in (tmp, *(tmp.with_suffix(s) for s in companions)):
            leftover.unlink(missing_ok=True)


def built_dir(target: Path, build: Callable[[Path], None], replace: bool = False) -> Path:
    """`target`, made by `build(tmp)` into a temporary directory renamed into place (so an
    interrupted build never leaves a half-written model behind). An existing `target` is
    kept as it is, unless `replace`."""
    if target.is_dir() and not replace:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        build(tmp)
        if replace:
            shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
