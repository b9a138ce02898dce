import sqlite3

import pytest

from optbench.errors import OptbenchError
from optbench.results.schema import EnergyReading, Metric, RunResult, Trial
from optbench.results.store import Store
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
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == 2
    (run,) = store.runs()
    assert run.result.trials and all(t.requests is None for t in run.result.trials)
