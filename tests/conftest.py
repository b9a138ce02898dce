"""Shared test setup: a private optbench cache per session, no host RAPL counters unless a
test is marked `rapl`, and the gpu marker policy."""

from __future__ import annotations

import os

import pytest

# No test waits on a download of published weights (models/hub.py): tests of the download
# path unset this and serve the file from loopback. Child processes inherit it.
os.environ.setdefault("OPTBENCH_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read or write the user's cache; builds are shared within one session."""
    if os.environ.get("OPTBENCH_TEST_CACHE"):
        os.environ["OPTBENCH_CACHE"] = os.environ["OPTBENCH_TEST_CACHE"]
    else:
        os.environ["OPTBENCH_CACHE"] = str(tmp_path_factory.mktemp("optbench-cache"))


@pytest.fixture(autouse=True)
def no_host_rapl(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the RAPL meter at an empty powercap tree, so no test depends on whether this host
    exposes RAPL (energy is then estimated, as on a VM). Tests marked `rapl` read the host's
    counters; tests that build their own tree set OPTBENCH_POWERCAP_ROOT after this runs.
    Child processes inherit the variable through os.environ."""
    if request.node.get_closest_marker("rapl") is not None:
        return
    monkeypatch.setenv("OPTBENCH_POWERCAP_ROOT", str(tmp_path_factory.mktemp("no-powercap")))


def gpu_reason() -> str | None:
    """None when a CUDA GPU is usable, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible to torch"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is None:
        return
    reason = gpu_reason()
    if reason is None:
        return
    if os.environ.get("OPTBENCH_REQUIRE_GPU") == "1":
        pytest.fail(f"OPTBENCH_REQUIRE_GPU=1 but {reason}")
    pytest.skip(reason)
