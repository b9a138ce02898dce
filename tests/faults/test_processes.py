"""Processes under faults: the parent killed or interrupted, a child killed, two sweeps at
once, a store locked when a run ends. The `cli` fixture checks afterwards that no process
and no temporary directory is left."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import psutil
import pytest
from faultkit import Cli, fake_recipe

from optbench.results.store import Store

BUSY = {"fake": {"latency_s": 30, "wait": "spin"}}  # a call holding the GIL for 30 s
ASLEEP = {"fake": {"fault": "hang", "fault_at": "infer"}}  # a call that never returns
FAST = "fake"


def gone(proc: psutil.Process) -> bool:
    """Ended (a zombie has ended: here init may reap it late)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for_log(out: Path, text: str, timeout: float = 60) -> Path:
    """The worker log that contains `text` (the child is that far)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in (out / "logs").glob("*.log"):
            if text in log.read_text(errors="replace"):
                return log
        time.sleep(0.1)
    raise AssertionError(f"no worker log in {out} reached {text!r}")


@pytest.mark.parametrize("child", [BUSY, ASLEEP], ids=["busy", "asleep"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=lambda s: s.name)
def test_the_child_ends_with_its_parent_however_the_parent_dies(cli: Cli, sig, child):
    recipe = fake_recipe(cli.cwd / "r.yaml", [child])
    parent = cli.start("run", str(recipe), "--out", "out")
    wait_for_log(cli.cwd / "out", "phase: warm-up")
    worker = cli.wait_for_worker()
    parent.send_signal(sig)
    stopped_at = time.monotonic()
    _, stderr = parent.communicate(timeout=30)
    assert cli.wait_gone(timeout=5) == [], "the worker outlived its parent"
    assert time.monotonic() - stopped_at < 5  # the grace period is not needed
    assert gone(worker)
    if sig == signal.SIGKILL:
        assert parent.returncode == -signal.SIGKILL
        return
    # Ctrl-C, SIGTERM and SIGHUP: the sweep stops its child and says what it kept
    assert parent.returncode == 128 + sig, stderr
    assert f"interrupted by {sig.name}: 0 of 1 configuration(s) finished" in stderr
    assert "fake-mlp fake" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr


def test_an_interrupted_sweep_keeps_what_finished_and_resume_goes_on(cli: Cli):
    recipe = fake_recipe(cli.cwd / "r.yaml", [FAST, ASLEEP])
    out = cli.cwd / "out"
    parent = cli.start("run", str(recipe), "--out", str(out))
    wait_for_log(out, "phase: warm-up", timeout=90)
    while len(list((out / "logs").glob("*.log"))) < 2:  # the second one is under way
        time.sleep(0.1)
    wait_for_log_count(out, "phase: warm-up", 2)
    parent.send_signal(signal.SIGINT)
    _, stderr = parent.communicate(timeout=30)
    assert parent.returncode == 130
    assert "1 of 2 configuration(s) finished and kept" in stderr
    store = Store.open(out)
    try:
        assert [r.result.status for r in store.runs()] == ["ok"]
    finally:
        store.close()


def wait_for_log_count(out: Path, text: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = [p for p in (out / "logs").glob("*.log") if text in p.read_text(errors="replace")]
        if len(logs) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} logs reached {text!r}")


def test_a_child_killed_by_sigkill_is_reported_as_such_not_as_oom(cli: Cli):
    recipe = fake_recipe(cli.cwd / "r.yaml", [ASLEEP])
    parent = cli.start("run", str(recipe), "--out", "out")
    wait_for_log(cli.cwd / "out", "phase: warm-up")
    cli.wait_for_worker().kill()
    _, stderr = parent.communicate(timeout=60)
    store = Store.open(cli.cwd / "out")
    try:
        (run,) = store.runs()
    finally:
        store.close()
    reason = run.result.reason
    assert run.result.status == "failed"
    assert "killed by SIGKILL" in reason and "kill -9" in reason
    assert "out-of-memory killer" in reason and "most likely" not in reason
    assert parent.returncode == 1 and "every configuration failed" in stderr


def test_a_second_sweep_into_the_same_directory_is_refused(cli: Cli):
    recipe = fake_recipe(cli.cwd / "r.yaml", [ASLEEP], timeout_s=60)
    first = cli.start("run", str(recipe), "--out", "out")
    wait_for_log(cli.cwd / "out", "phase: warm-up")
    started = time.monotonic()
    second = cli.run("run", str(recipe), "--out", "out")
    assert time.monotonic() - started < 30
    assert second.returncode == 1, second.stderr
    assert f"another optbench sweep (pid {first.pid}) is writing to" in second.stderr
    assert "Traceback" not in second.stderr
    assert len(list((cli.cwd / "out" / "logs").glob("*.log"))) == 1  # it measured nothing
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=30)
    # the lock dies with its holder: a later sweep runs
    third = cli.run("run", str(fake_recipe(cli.cwd / "fast.yaml", [FAST])), "--out", "out")
    assert third.returncode == 0, third.stderr


def test_a_run_finishing_on_a_locked_store_is_kept_on_disk_and_imported(cli: Cli):
    out = cli.cwd / "out"
    recipe = fake_recipe(cli.cwd / "r.yaml", [{"fake": {"latency_s": 0.02}}])
    parent = cli.start("run", str(recipe), "--out", str(out),
                       env={"OPTBENCH_STORE_WAIT_S": "3"})
    wait_for_log(out, "phase: building model")
    holder = sqlite3.connect(out / "optbench.sqlite", timeout=30, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a database browser holding a write transaction
    try:
        _, stderr = parent.communicate(timeout=120)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert parent.returncode == 1, stderr
    assert "is locked by another process; waiting to write the result" in stderr
    kept = list((out / "pending").glob("*.json"))
    assert len(kept) == 1 and "optbench import --out" in stderr
    assert "Traceback" not in stderr
    imported = cli.run("import", "--out", str(out))
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 result(s)" in imported.stderr + imported.stdout
    assert not list((out / "pending").glob("*.json"))
    store = Store.open(out)
    try:
        (run,) = store.runs()
        assert run.result.status == "ok" and run.result.latencies_s
    finally:
        store.close()
