"""The `cli` fixture of the fault-injection tests (helpers in faultkit.py): a private TMPDIR
and a marker for every process a test starts; afterwards none may be running and no
`optbench-*` temporary directory may be left."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from faultkit import Cli, fake_recipe  # noqa: F401  (re-exported for the test modules)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    session = Cli(work, tmpdir, uuid.uuid4().hex)
    yield session
    left = session.wait_gone(timeout=10)
    for proc in left:  # never leave them running, even when the assertion below fails
        try:
            proc.kill()
        except psutil.Error:
            pass
    assert not left, f"processes left running: {[p.cmdline() for p in left]}"
    assert not session.temp_dirs(), f"temporary directories left: {session.temp_dirs()}"
