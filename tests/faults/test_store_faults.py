"""The store and the report under faults: files that are not stores, read-only media, a full
disk (a file-size limit), a lock held by another program, a store of an older schema.

Each CLI test runs `python -m optbench` in a subprocess on a copy of one real store (made
once per module by `compare`) and checks what the user sees: one `error:` line, exit 1,
and nothing written or overwritten. A chmod 0555 directory is read-only for root too: its
CLI runs without CAP_DAC_OVERRIDE (see `unprivileged`)."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optbench import SCHEMA_VERSION
from optbench.cli import app
from optbench.cli.app import os_error_text
from optbench.env import env_id
from optbench.results.identity import spec_key

FAKE = ("-m", "fake-mlp", "-b", "fake", "--preset", "smoke")
STORE = "optbench.sqlite"
REPORT = "compare-fake-mlp"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One real store and its report (`compare` on the test model), and the environment it
    was made under (the same powercap root, so a later run resumes it)."""
    base = tmp_path_factory.mktemp("made")
    powercap = base / "no-powercap"
    powercap.mkdir()
    env = {"OPTBENCH_POWERCAP_ROOT": str(powercap)}
    done = subprocess.run([sys.executable, "-m", "optbench", "compare", *FAKE, "-o", "OUT"],
                          cwd=base, env={**os.environ, **env, "TMPDIR": str(base)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return base / "OUT", env


@pytest.fixture
def out(cli, made) -> Path:
    """A copy of the made store and report in the test's working directory."""
    shutil.copytree(made[0], cli.cwd / "OUT", ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    return cli.cwd / "OUT"


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file's bytes, but SQLite's side files of a reader in a writable directory:
    its -shm index and an empty -wal (a read-only connection cannot delete them)."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()
            and not p.name.endswith("-shm") and not (p.name.endswith("-wal")
                                                     and p.stat().st_size == 0)}


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one `error:` line of a failed command (exit 1, no traceback)."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def temp_leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if ".tmp" in p.name]


# --- files that are not stores -------------------------------------------------------------

def not_a_store(path: Path, kind: str, made_store: Path) -> str:
    """Write a bad file of `kind` at `path`; returns what the error says about it."""
    if kind == "garbage":
        path.write_bytes(b"this is a CSV, not a database\n" * 300)
        return "is not an optbench store (file is not a database)"
    if kind == "empty":
        path.write_bytes(b"")
        return "is not an optbench store (empty file)"
    if kind == "truncated":
        data = made_store.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        return "is damaged (truncated"
    db = sqlite3.connect(path)  # another program's database under the store's name
    db.execute("CREATE TABLE notes (text TEXT)")
    db.commit()
    db.close()
    return "is not an optbench store (tables notes"


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "foreign"])
def test_a_file_that_is_not_a_store_is_one_line_and_left_as_it_is(cli, made, kind):
    out = cli.cwd / "OUT"
    out.mkdir()
    says = not_a_store(out / STORE, kind, made[0] / STORE)
    before = snapshot(out)
    commands = [("report",), ("export",), ("export", "-f", "json"), ("recommend",)]
    for command in commands:
        line = error_line(cli.run(*command, "-o", "OUT"))
        assert f"OUT/{STORE} {says}" in line and "pass another --out" in line, line
    assert snapshot(out) == before  # byte-identical, and no report, -wal or -shm beside it
    if kind != "empty":  # an empty file is a new store to the writer
        line = error_line(cli.run("compare", *FAKE, "-o", "OUT"))
        assert f"OUT/{STORE} {says}" in line, line
        assert (out / STORE).read_bytes() == before[STORE]


# --- read-only media -----------------------------------------------------------------------

# Capabilities that let root ignore permissions (capability.h): without them a process of
# uid 0 is held to the owner's bits like anyone, and the test files are root's.
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3
PR_CAPBSET_DROP = 24


@dataclass
class Unprivileged:
    """How to run the CLI so that a chmod 0555 directory really is read-only."""

    preexec: Callable[[], None] | None


@pytest.fixture
def unprivileged() -> Unprivileged:
    """Nothing to do for a normal user. Root ignores chmod, so its CLI runs without the
    capabilities that let it (dropped from the bounding set before exec): still uid 0, so
    the interpreter and pytest's 0700 directories stay reachable, but a 0555 directory of
    its own is as read-only to it as to any owner."""
    if os.geteuid() != 0:
        return Unprivileged(None)
    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")

    try:
        subprocess.run(["true"], preexec_fn=drop, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"running as root (which ignores chmod) and cannot drop "
                    f"CAP_DAC_OVERRIDE: {exc}")
    return Unprivileged(drop)


def set_read_only(directory: Path, read_only: bool) -> None:
    for path in [directory, *directory.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555 if read_only else 0o755)
        else:
            path.chmod(0o444 if read_only else 0o644)


def test_a_store_on_read_only_media_is_read_and_never_written(cli, out, unprivileged):
    before = snapshot(out)
    dest = cli.cwd / "dest"
    dest.mkdir()
    dest.chmod(0o777)
    set_read_only(out, True)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli.run(*args, preexec=unprivileged.preexec)

    try:
        exported = run("export", "-o", "OUT", "-f", "json")
        assert exported.returncode == 0, exported.stderr
        assert [r["backend"] for r in json.loads(exported.stdout)] == ["fake"]
        recommended = run("recommend", "-o", "OUT")
        assert recommended.returncode == 0 and "best: fake fp32" in recommended.stdout, \
            recommended.stderr
        reported = run("report", "-o", "OUT", "--dest", "dest")
        assert reported.returncode == 0, reported.stderr
        assert (dest / REPORT / "index.html").stat().st_size > 0
        line = error_line(run("report", "-o", "OUT"))  # its default destination is OUT
        assert f"OUT/{REPORT}/" in line and "Permission denied" in line, line
        for target in ("OUT", "OUT/sub"):
            line = error_line(run("compare", *FAKE, "-o", target))
            assert "Permission denied" in line or "read-only" in line, line
    finally:
        set_read_only(out, False)
    assert snapshot(out) == before  # nothing written: no -wal, no -shm, no report


# --- a full disk (a file-size limit: writes past it fail with EFBIG) -----------------------

def file_size_limit(limit_bytes: int) -> Callable[[], None]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return limit


def test_a_full_disk_while_writing_the_report_leaves_the_previous_one(cli, out):
    report = out / REPORT
    page = report / "index.html"
    others = max(p.stat().st_size for p in report.rglob("*") if p.is_file() and p != page)
    assert page.stat().st_size > 2 * others + 4096  # room for a limit between them
    before = snapshot(out)
    limit = others + (page.stat().st_size - others) // 2
    line = error_line(cli.run("report", "-o", "OUT", preexec=file_size_limit(limit)))
    assert line.startswith(f"error: cannot write OUT/{REPORT}/index.html: File too large"), line
    assert page.read_bytes() == before[f"{REPORT}/index.html"]  # the previous page, whole
    assert snapshot(out).keys() == before.keys() and not temp_leftovers(out)
    assert (out / STORE).read_bytes() == before[STORE]


def test_a_full_disk_while_creating_the_store_leaves_no_half_store(cli):
    line = error_line(cli.run("compare", *FAKE, "-o", "NEW", preexec=file_size_limit(3000)))
    assert f"cannot write NEW/{STORE}" in line and "pass another --out" in line, line
    assert not list((cli.cwd / "NEW").glob(f"{STORE}*"))


# --- another program holds the store -------------------------------------------------------

def hold_write_lock(path: Path) -> sqlite3.Connection:
    """A connection in this process (another process to the CLI) in a write transaction."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    other.execute("INSERT INTO environments VALUES ('uncommitted', 't', '{}')")
    return other


def test_readers_work_while_another_process_writes(cli, out):
    other = hold_write_lock(out / STORE)
    try:
        started = time.monotonic()
        exported = cli.run("export", "-o", "OUT", "-f", "json")
        assert exported.returncode == 0, exported.stderr
        assert len(json.loads(exported.stdout)) == 1
        reported = cli.run("report", "-o", "OUT", "--dest", "dest", "--no-html")
        assert reported.returncode == 0, reported.stderr
        assert time.monotonic() - started < 25  # neither waited for the 30 s busy timeout
    finally:
        other.rollback()
        other.close()


def test_a_writer_facing_a_lock_says_so_in_one_line(cli, out):
    before = (out / STORE).read_bytes()
    other = hold_write_lock(out / STORE)
    try:
        line = error_line(cli.run("compare", *FAKE, "-o", "OUT",
                                  env={"OPTBENCH_STORE_WAIT_S": "1"}))
        assert f"OUT/{STORE} is locked by another process (waited" in line, line
    finally:
        other.rollback()
        other.close()
    assert (out / STORE).read_bytes() == before


# --- a store of schema v2: keys with the timeout in them -----------------------------------

def v2_key(spec: dict) -> str:
    data = {k: v for k, v in spec.items() if k != "recipe"}
    if data.get("scenario") is None:
        data.pop("scenario", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_v2(path: Path, timeouts: tuple[float, ...]) -> None:
    """Turn a store into what schema v2 wrote: the run repeated once per extra timeout,
    keys that hash the timeout, and an environment fingerprinted as v2."""
    db = sqlite3.connect(path)
    tables = {"metrics": "name, value, unit", "latency": "kind, n, values_s",
              "trials": "trial, phase, window_s, samples, flags, telemetry, requests",
              "energy": "trial, channel, energy_j, window_s, method, api, reads, wraps, "
                        "flags, uncertainty_j, reason, details, in_total"}
    columns = ", ".join(r[1] for r in db.execute("PRAGMA table_info(runs)") if r[1] != "id")
    for timeout_s in timeouts:
        new = db.execute(f"INSERT INTO runs ({columns}) SELECT {columns} FROM runs WHERE id=1"
                         ).lastrowid
        db.execute("UPDATE runs SET spec=json_set(spec, '$.measure.timeout_s', ?) WHERE id=?",
                   (timeout_s, new))
        for table, cols in tables.items():
            db.execute(f"INSERT INTO {table} SELECT ?, {cols} FROM {table} WHERE run_id=1",
                       (new,))
    for run_id, spec in db.execute("SELECT id, spec FROM runs").fetchall():
        db.execute("UPDATE runs SET spec_key=?, schema_version=2 WHERE id=?",
                   (v2_key(json.loads(spec)), run_id))
    (old, data), = db.execute("SELECT id, data FROM environments").fetchall()
    fingerprint = {**json.loads(data), "schema_version": 2}
    db.execute("UPDATE environments SET id=?, data=?", (env_id(fingerprint),
                                                        json.dumps(fingerprint, sort_keys=True)))
    db.execute("UPDATE runs SET env_id=?", (env_id(fingerprint),))
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()


def store_facts(path: Path) -> tuple[int, int, set[str]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        keys = {k for (k,) in db.execute("SELECT spec_key FROM runs")}
        return version, runs, keys
    finally:
        db.close()


def test_an_old_store_resumes_and_reports_one_configuration_whatever_the_timeout(cli, out,
                                                                               made):
    make_v2(out / STORE, timeouts=(600.0,))
    version, runs, keys = store_facts(out / STORE)
    assert (version, runs, len(keys)) == (2, 2, 2)  # two keys for one configuration
    before = (out / STORE).read_bytes()
    exported = cli.run("export", "-o", "OUT", "-f", "json", env=made[1])
    assert exported.returncode == 0, exported.stderr
    assert len(json.loads(exported.stdout)) == 1  # read without migrating: one row
    assert (out / STORE).read_bytes() == before
    resumed = cli.run("compare", *FAKE, "-o", "OUT", "--resume", "--timeout", "300",
                      env=made[1])
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: already ok" in resumed.stdout + resumed.stderr
    version, runs, keys = store_facts(out / STORE)  # migrated: one key, nothing re-measured
    assert (version, runs) == (SCHEMA_VERSION, 2)
    assert keys == {spec_key(json.loads(first_spec(out / STORE)))}
    exported = cli.run("export", "-o", "OUT", "-f", "json", env=made[1])
    assert len(json.loads(exported.stdout)) == 1


def first_spec(path: Path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT spec FROM runs ORDER BY id LIMIT 1").fetchone()[0]
    finally:
        db.close()


# --- in-process: the error boundary and the atomic report files ----------------------------

@pytest.fixture
def local_out(tmp_path, made) -> Path:
    shutil.copytree(made[0], tmp_path / "OUT", ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    return tmp_path / "OUT"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_error(result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_disk_that_fills_mid_write_leaves_the_previous_report_md(local_out, monkeypatch):
    before = snapshot(local_out)
    real = Path.write_text

    def half_then_full(self, text, *args, **kwargs):
        real(self, text[:len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")  # a write names no file

    monkeypatch.setattr(Path, "write_text", half_then_full)
    line = one_error(invoke("report", "-o", str(local_out)))
    assert line.startswith(f"error: cannot write {local_out}/{REPORT}/report.md: No space "
                           "left on device (free some space"), line
    after = snapshot(local_out)  # the figures before it were redrawn whole (new SVG ids)
    assert after.keys() == before.keys() and not temp_leftovers(local_out)
    for name in (f"{REPORT}/report.md", f"{REPORT}/index.html", STORE):
        assert after[name] == before[name], name


def test_a_figure_that_cannot_be_saved_leaves_the_previous_figure(local_out, monkeypatch):
    import matplotlib.figure

    before = snapshot(local_out)

    def half_then_full(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_full)
    line = one_error(invoke("report", "-o", str(local_out)))
    assert f"cannot write {local_out}/{REPORT}/figures/" in line and "File too large" in line
    assert snapshot(local_out) == before and not temp_leftovers(local_out)  # the first figure
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # every figure closed on the way out


def test_a_read_only_file_system_is_one_line(local_out, monkeypatch):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    line = one_error(invoke("report", "-o", str(local_out), "--dest", str(local_out / "new")))
    assert line.startswith(f"error: cannot write {local_out}/new/{REPORT}: Read-only file "
                           "system (a read-only file system"), line


@pytest.mark.parametrize("error", [FileNotFoundError(errno.ENOENT, "No such file", "x"),
                                   OSError(errno.EINVAL, "Invalid argument"),
                                   ValueError("a bug")])
def test_programming_errors_are_not_hidden(local_out, monkeypatch, error):
    import optbench.report.render

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(optbench.report.render, "analyse", broken)
    result = invoke("report", "-o", str(local_out))
    assert result.exception is error  # a traceback, not a tidy line


def test_os_error_text():
    full = OSError(errno.ENOSPC, "No space left on device", "OUT/x", None, "OUT/y")
    assert os_error_text(full) == ("cannot write OUT/y: No space left on device (free some "
                                   "space, or write elsewhere (--out, --dest))")
    assert os_error_text(OSError(errno.EPIPE, "Broken pipe")) is None  # click's to handle
    assert os_error_text(PermissionError(errno.EACCES, "Permission denied", "d")).startswith(
        "cannot access d: Permission denied")
