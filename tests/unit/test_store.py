import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optbench import SCHEMA_VERSION
from optbench.env import env_id
from optbench.errors import OptbenchError
from optbench.report.data import latest_runs
from optbench.results.identity import spec_key
from optbench.results.schema import EnergyReading, Metric, RunResult, Trial
from optbench.results.store import (
    STORE_NAME,
    NotAStore,
    Store,
    StoreDamaged,
    StoreError,
    StoreLocked,
    StoreUnwritable,
    StoreVersionError,
)
from optbench.run.parse import parse_recipe

SPEC = parse_recipe({"name": "t", "model": "fake-mlp", "backends": ["fake"],
                     "measure": {"preset": "smoke"}}).expand("cpu")[0]


def result(status="ok"):
    readings = (EnergyReading("cpu:package-0", 2.0, 1.0, "measured-counter",
                              "powercap:intel-rapl:0/energy_uj", reads=11, wraps=1,
                              flags=("below_resolution",), uncertainty_j=0.01),
                EnergyReading("gpu:x", None, 1.0, "unavailable", "none", reason="no-device"))
    return RunResult(status=status, quality_metric="top1",
                     metrics=[Metric("top1", 0.9, "fraction")], latencies_s=[0.1, 0.2, 0.3],
                     device_latencies_s=[0.05, 0.06],
                     trials=[Trial(0, "idle", 1.0, 0, readings),
                             Trial(1, "load", 1.0, 10, readings)],
                     artifact={"weights": "w"}, backend={"path": "p"}, details={"k": 1},
                     phases_s={"load_s": 1.5})


def add(store, res, env="env1"):
    store.put_environment(env, {"cpu": {"model": "x"}})
    return store.add_run(SPEC.to_dict(), SPEC.key(), env, res, git_sha="abc", git_dirty=False,
                         started_at="t0", finished_at="t1", wall_s=2.0, log_path="l")


def test_roundtrip_keeps_raw_data_and_provenance(tmp_path):
    store = Store.open(tmp_path)
    run_id = add(store, result())
    (run,) = store.runs()
    assert run.id == run_id and run.spec_key == SPEC.key() and run.git_sha == "abc"
    assert run.result.latencies_s == [0.1, 0.2, 0.3]
    assert run.result.device_latencies_s == [0.05, 0.06]
    assert run.result.trials[1].readings == result().trials[1].readings
    assert run.result.metrics == [Metric("top1", 0.9, "fraction")]
    assert run.result.phases_s == {"load_s": 1.5}
    assert store.environment("env1") == {"cpu": {"model": "x"}}


def test_unmeasured_energy_is_stored_as_null_not_zero(tmp_path):
    store = Store.open(tmp_path)
    add(store, result())
    rows = store.db.execute("SELECT energy_j, reason FROM energy WHERE method='unavailable'")
    assert all(r["energy_j"] is None and r["reason"] == "no-device" for r in rows)


def test_has_ok_is_per_environment(tmp_path):
    store = Store.open(tmp_path)
    add(store, result("failed"))
    assert not store.has_ok(SPEC.key(), "env1")
    add(store, result())
    assert store.has_ok(SPEC.key(), "env1")
    assert not store.has_ok(SPEC.key(), "env2")


def test_a_failed_write_leaves_nothing_half_written(tmp_path):
    store = Store.open(tmp_path)
    bad = result()
    bad.metrics = [Metric("x", 1.0, None)]  # violates NOT NULL on unit
    with pytest.raises(sqlite3.IntegrityError):
        add(store, bad)
    assert store.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_schema_version_mismatch_is_refused(tmp_path):
    Store.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "optbench.sqlite")
    db.execute("PRAGMA user_version=999")
    db.commit()
    db.close()
    with pytest.raises(OptbenchError, match="schema v999"):
        Store.open(tmp_path)


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(OptbenchError, match="no results store"):
        Store.open(tmp_path / "nothing", must_exist=True)


def test_a_version_1_store_is_upgraded_and_keeps_its_runs(tmp_path):
    store = Store.open(tmp_path)
    add(store, result())
    store.close()
    db = sqlite3.connect(tmp_path / "optbench.sqlite")  # make it what version 1 wrote
    db.execute("ALTER TABLE trials DROP COLUMN requests")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = Store.open(tmp_path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    (run,) = store.runs()
    assert run.result.trials and all(t.requests is None for t in run.result.trials)


# --- read-only opens, damaged files, locks, old keys (issue 14) ---------------------------

def store_file(tmp_path):
    return tmp_path / STORE_NAME


def make_store(tmp_path, runs=1):
    store = Store.open(tmp_path)
    for _ in range(runs):
        add(store, result())
    store.close()
    return store_file(tmp_path)


def old_key(spec):
    """RunSpec.key() as schema v1/v2 computed it: the timeout included."""
    data = dict(spec)
    data.pop("recipe")
    if data.get("scenario") is None:
        data.pop("scenario", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_old_store(tmp_path, version, timeouts=(1800.0,)):
    """A store as schema `version` wrote it: one run per timeout, keyed the old way (v1
    also lacks trials.requests), under an environment fingerprinted with that version."""
    store = Store.open(tmp_path)
    fingerprint = {"schema_version": version, "hostname": "box", "cpu": {"model": "x"}}
    old_env = env_id(fingerprint)
    store.put_environment(old_env, fingerprint)
    for timeout_s in timeouts:
        spec = SPEC.to_dict()
        spec["measure"]["timeout_s"] = timeout_s
        store.add_run(spec, old_key(spec), old_env, result(), git_sha=None, git_dirty=None,
                      started_at="t0", finished_at="t1", wall_s=1.0, log_path=None)
    store.close()
    db = sqlite3.connect(store_file(tmp_path))
    if version == 1:
        db.execute("ALTER TABLE trials DROP COLUMN requests")
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()
    return store_file(tmp_path), old_env, fingerprint


def test_the_key_leaves_out_the_timeout_and_the_recipe_name():
    base = {"name": "t", "model": "fake-mlp", "backends": ["fake"]}
    key = parse_recipe({**base, "measure": {"timeout_s": 10}}).expand("cpu")[0].key()
    assert key == parse_recipe({**base, "name": "u", "measure": {"timeout_s": 900}}
                               ).expand("cpu")[0].key()
    for changed in ({"measure": {"preset": "smoke"}}, {"measure": {"estimate": False}},
                    {"measure": {"cpu_tdp_w": 65}}, {"workload": {"seed": 1}}):
        assert parse_recipe({**base, **changed}).expand("cpu")[0].key() != key
    assert SPEC.key() == spec_key(SPEC.to_dict())


def test_a_readonly_open_reads_and_writes_nothing(tmp_path):
    path = make_store(tmp_path)
    before = path.read_bytes()
    store = Store.open(tmp_path, readonly=True)
    (run,) = store.runs()
    assert run.result.latencies_s == [0.1, 0.2, 0.3] and store.has_ok(SPEC.key(), "env1")
    with pytest.raises(StoreUnwritable, match="read-only"):
        add(store, result())
    store.close()
    assert path.read_bytes() == before


def test_a_readonly_open_needs_a_store(tmp_path):
    with pytest.raises(OptbenchError, match="no results store"):
        Store.open(tmp_path, readonly=True)
    assert not store_file(tmp_path).exists()


@pytest.mark.parametrize("content, why", [
    (b"", "not an optbench store (empty file)"),
    (b"PK\x03\x04 not sqlite at all" * 200, "not an optbench store (file is not a database)"),
])
def test_a_file_that_is_not_a_store_is_refused_and_left_as_it_is(tmp_path, content, why):
    path = store_file(tmp_path)
    path.write_bytes(content)
    with pytest.raises(NotAStore, match=re.escape(why)) as error:
        Store.open(tmp_path, readonly=True)
    assert str(path) in str(error.value) and "pass another --out" in str(error.value)
    if content:  # the writer refuses garbage too; an empty file is a new store to it
        with pytest.raises(NotAStore):
            Store.open(tmp_path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [STORE_NAME]


def test_another_programs_database_is_not_a_store(tmp_path):
    path = store_file(tmp_path)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.commit()
    db.close()
    before = path.read_bytes()
    for readonly in (True, False):
        with pytest.raises(NotAStore, match="tables notes, none of them optbench's"):
            Store.open(tmp_path, readonly=readonly)
    empty = tmp_path / "empty"
    empty.mkdir()
    sqlite3.connect(empty / STORE_NAME).execute("PRAGMA user_version=0").close()
    with pytest.raises(NotAStore, match="no optbench tables"):
        Store.open(empty, readonly=True)
    assert path.read_bytes() == before


def test_a_truncated_store_is_damaged_not_a_traceback(tmp_path):
    path = make_store(tmp_path, runs=3)
    data = path.read_bytes()
    for size in (50, 4096, len(data) - 100):
        path.write_bytes(data[:size])
        for readonly in (True, False):
            with pytest.raises(StoreDamaged, match="truncated"):
                Store.open(tmp_path, readonly=readonly)
        assert path.read_bytes() == data[:size]


def test_a_damaged_page_is_one_clear_error(tmp_path):
    path = make_store(tmp_path, runs=3)
    data = bytearray(path.read_bytes())
    data[4096 * 2:4096 * 4] = b"\xff" * 8192  # overwrite two b-tree pages, keep the size
    path.write_bytes(bytes(data))
    with pytest.raises(StoreDamaged, match="malformed"):
        Store.open(tmp_path, readonly=True).runs()


def test_a_version_1_store_is_read_without_migrating(tmp_path):
    path, old_env, _ = make_old_store(tmp_path, version=1)
    before = path.read_bytes()
    store = Store.open(tmp_path, readonly=True)
    (run,) = store.runs()
    assert store.version == 1 and run.spec_key == SPEC.key()
    assert run.result.trials and all(t.requests is None for t in run.result.trials)
    assert store.has_ok(SPEC.key(), old_env)
    store.close()
    assert path.read_bytes() == before


def test_a_version_2_store_is_rekeyed_so_a_new_timeout_is_the_same_configuration(tmp_path):
    path, old_env, fingerprint = make_old_store(tmp_path, version=2, timeouts=(1800.0, 60.0))
    db = sqlite3.connect(path)
    assert len({k for (k,) in db.execute("SELECT spec_key FROM runs")}) == 2  # the bug
    db.close()
    readonly = Store.open(tmp_path, readonly=True)  # read without migrating: one key
    assert {r.spec_key for r in readonly.runs()} == {SPEC.key()}
    assert len(latest_runs(readonly.runs())) == 1
    readonly.close()
    store = Store.open(tmp_path)  # the writer migrates: keys and environment ids
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    runs = store.runs()
    assert [r.spec_key for r in runs] == [SPEC.key()] * 2 and len(latest_runs(runs)) == 1
    # The environment id is what this optbench computes for the same machine: resume
    # finds the runs instead of measuring them again.
    current = env_id({**fingerprint, "schema_version": SCHEMA_VERSION})
    assert {r.env_id for r in runs} == {current} and store.has_ok(SPEC.key(), current)
    assert store.environment(current) == fingerprint
    assert store.db.execute("SELECT count(*) FROM environments").fetchone()[0] == 1
    assert old_env != current


def test_a_newer_store_is_refused_read_only_too(tmp_path):
    path = make_store(tmp_path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreVersionError, match=f"schema v{SCHEMA_VERSION + 1}"):
        Store.open(tmp_path, readonly=True)


def hold_lock(path):
    """Another connection holding the write lock (a database browser, another tool)."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    other.execute("INSERT INTO environments VALUES ('uncommitted', 't', '{}')")
    return other


def test_a_store_locked_past_the_busy_timeout_is_store_locked(tmp_path):
    path = make_store(tmp_path)
    other = hold_lock(path)
    try:
        with pytest.raises(StoreLocked) as error:
            Store.open(tmp_path, busy_timeout_s=0.2)
        assert error.value.path == path and 0.2 <= error.value.waited_s < 5
        assert str(path) in str(error.value) and "waited" in str(error.value)
    finally:
        other.rollback()
        other.close()


def test_a_locked_add_run_rolls_back_and_can_be_retried(tmp_path):
    store = Store.open(tmp_path, busy_timeout_s=0.2)
    add(store, result())
    other = hold_lock(store_file(tmp_path))
    try:
        with pytest.raises(StoreLocked):
            add(store, result())
        assert not store.db.in_transaction
    finally:
        other.rollback()
        other.close()
    add(store, result())  # the same Store object, once the lock is gone
    assert len(store.runs()) == 2
    assert store.db.execute("SELECT count(*) FROM metrics").fetchone()[0] == 2


def test_readers_do_not_wait_for_a_writer(tmp_path):
    make_store(tmp_path)
    other = hold_lock(store_file(tmp_path))
    try:
        started = time.monotonic()
        store = Store.open(tmp_path, readonly=True, busy_timeout_s=5)
        assert len(store.runs()) == 1 and store.environment("uncommitted") == {}
        store.close()
        assert time.monotonic() - started < 2
    finally:
        other.rollback()
        other.close()


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
sys.path[:0] = [{tests!r}]
from test_store import add, result
from optbench.results.store import Store, StoreUnwritable
store = Store.open(Path({out!r}))
add(store, result())
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, hard))
big = result()
big.latencies_s = [0.001] * 200_000  # 1.6 MB: past the limit
try:
    add(store, big)
    print("written")
except StoreUnwritable as exc:
    print("refused:", exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
print("in transaction:", store.db.in_transaction)
add(store, result())
print("runs:", len(store.runs()))
"""


def test_a_full_disk_during_add_run_is_refused_cleanly_and_the_store_goes_on(tmp_path):
    script = FULL_DISK.format(tests=str(Path(__file__).parent), out=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"refused: cannot write {store_file(tmp_path)}"), lines
    assert lines[1:] == ["in transaction: False", "runs: 2"]


def test_a_store_that_cannot_be_created_leaves_nothing(tmp_path, monkeypatch):
    real = sqlite3.connect

    def full(*args, **kwargs):  # the disk fills while the new store's tables are written
        db = real(*args, **kwargs)
        return FullConnection(db)

    class FullConnection:
        def __init__(self, db):
            self.db = db

        def __getattr__(self, name):
            return getattr(self.db, name)

        def execute(self, sql, *args):
            if sql.lstrip().startswith("CREATE TABLE IF NOT EXISTS runs"):
                raise sqlite3.OperationalError("database or disk is full")
            return self.db.execute(sql, *args)

    monkeypatch.setattr(sqlite3, "connect", full)
    with pytest.raises(StoreUnwritable, match="disk is full"):
        Store.open(tmp_path / "new")
    assert list((tmp_path / "new").iterdir()) == []


def test_programming_errors_stay_exceptions(tmp_path):
    store = Store.open(tmp_path)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        with store._errors():
            store.db.execute("SELECT * FROM missing_table")


# --- schema v4: outcomes, stored latency statistics, bulk reads (issue 15) ------------------

def test_outcomes_round_trip_compactly(tmp_path):
    store = Store.open(tmp_path)
    res = result()
    res.outcomes = {"top1": [1.0, 0.0, 1.0, 1.0], "perplexity": [2.5, 3.25, float("inf")],
                    "empty": []}
    add(store, res)
    rows = {r["name"]: (r["n"], r["dtype"], len(r["data"])) for r in store.db.execute(
        "SELECT name, n, dtype, data FROM outcomes")}
    assert rows == {"top1": (4, "u1", 4), "perplexity": (3, "f8", 24), "empty": (0, "u1", 0)}
    (run,) = store.runs()
    outcomes = run.result.outcomes
    assert set(outcomes) == {"top1", "perplexity", "empty"}
    assert outcomes["top1"].dtype == float and outcomes["top1"].tolist() == [1, 0, 1, 1]
    assert outcomes["perplexity"].tolist() == [2.5, 3.25, float("inf")]
    assert len(outcomes["empty"]) == 0
    (run,) = store.runs(raw=False)  # outcomes come with every read
    assert run.result.outcomes["top1"].tolist() == [1, 0, 1, 1]


def test_latency_statistics_are_stored_and_raw_arrays_read_on_demand(tmp_path):
    import random

    from optbench.results.stats import percentile

    rng = random.Random(3)
    values = [rng.lognormvariate(-6, 0.3) for _ in range(997)]
    store = Store.open(tmp_path)
    res = result()
    res.latencies_s = values
    add(store, res)
    (run,) = store.runs(raw=False)
    assert run.result.latencies_s == [] and run.result.device_latencies_s == []
    stats = run.latency_stats()
    # the same definition as results.stats.percentile, to the last bit
    assert (stats.p50_s, stats.p90_s, stats.p99_s) == tuple(
        percentile(values, q) for q in (50, 90, 99))
    assert stats.n == 997 and stats.mean_s == pytest.approx(sum(values) / 997, rel=1e-12)
    assert run.latency_stats("device").n == 2
    assert run.raw_latencies() == values and run.raw_latencies("device") == [0.05, 0.06]
    (full,) = store.runs()  # raw: the arrays come with the run, and the same statistics
    assert full.result.latencies_s == values and full.latency_stats() == stats
    store.close()
    with pytest.raises(StoreError, match="was closed"):
        run.raw_latencies()


def test_a_bulk_read_takes_a_few_queries_not_several_per_run(tmp_path):
    store = Store.open(tmp_path)
    for _ in range(40):
        add(store, result())
    selects = []
    store.db.set_trace_callback(lambda sql: selects.append(sql)
                                if sql.lstrip().upper().startswith("SELECT") else None)
    runs = store.runs(raw=False)
    assert len(runs) == 40 and len(selects) <= 10, selects
    assert all(r.result.trials[1].readings == result().trials[1].readings for r in runs)
    selects.clear()
    assert [r.id for r in store.iter_runs([3, 1, 99, 2], raw=False)] == [1, 2, 3]
    assert len(selects) <= 8
    assert {r.result.status for r in store.runs("failed")} == set()


def test_run_keys_choose_the_latest_runs_without_loading_them(tmp_path):
    from optbench.report.data import latest_ids

    store = Store.open(tmp_path)
    first, second = add(store, result()), add(store, result())
    other = add(store, result(), env="env2")
    assert store.run_keys() == [(first, SPEC.key(), "env1"), (second, SPEC.key(), "env1"),
                                (other, SPEC.key(), "env2")]
    assert latest_ids(store) == [r.id for r in latest_runs(store.runs())] == [second, other]


def make_v3_store(tmp_path):
    """A store as schema v3 wrote it: no latency statistics, no outcomes, no indexes, the
    environment fingerprinted with v3."""
    path, old_env, fingerprint = make_old_store(tmp_path, version=3)
    db = sqlite3.connect(path)
    for table in ("latency_stats", "outcomes"):
        db.execute(f"DROP TABLE {table}")
    for (index,) in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND "
                               "sql IS NOT NULL").fetchall():
        db.execute(f"DROP INDEX {index}")
    db.execute("UPDATE runs SET schema_version=3, spec_key=?", (SPEC.key(),))  # v3's key
    db.commit()
    db.execute("VACUUM")
    db.close()
    return path, old_env, fingerprint


def test_a_version_3_store_is_read_without_migrating_and_then_migrated(tmp_path):
    path, old_env, fingerprint = make_v3_store(tmp_path)
    before = path.read_bytes()
    store = Store.open(tmp_path, readonly=True)
    (run,) = store.runs(raw=False)  # statistics from the raw arrays; no outcomes
    assert store.version == 3 and run.result.outcomes == {}
    assert run.latency_stats().p50_s == 0.2 and run.latency_stats("device").n == 2
    assert run.raw_latencies() == [0.1, 0.2, 0.3]
    assert store.runs()[0].result.latencies_s == [0.1, 0.2, 0.3]
    store.close()
    assert path.read_bytes() == before
    store = Store.open(tmp_path)  # the writer migrates: statistics, outcomes, environments
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    stats = store.db.execute("SELECT kind, n, p50_s, p99_s FROM latency_stats ORDER BY kind")
    assert [tuple(r) for r in stats] == [("batch", 3, 0.2, pytest.approx(0.298)),
                                         ("device", 2, pytest.approx(0.055),
                                          pytest.approx(0.0599))]
    current = env_id({**fingerprint, "schema_version": SCHEMA_VERSION})
    (run,) = store.runs(raw=False)
    assert run.env_id == current != old_env and store.has_ok(SPEC.key(), current)
    assert run.latency_stats().p50_s == 0.2 and run.result.outcomes == {}
    res = result()
    res.outcomes = {"top1": [1.0, 0.0]}
    add(store, res, env=current)  # a migrated store takes new runs with outcomes
    assert store.runs()[-1].result.outcomes["top1"].tolist() == [1.0, 0.0]
    plan = " ".join(r[3] for r in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT values_s FROM latency WHERE run_id=1"))
    assert "latency_run" in plan  # raw arrays on demand: found by index, not a scan
