"""SQLite store (stdlib sqlite3, WAL): one transaction per finished run, raw data kept.

Tables: environments, runs, metrics (long format with units), latency (raw per-iteration
arrays), trials and energy (per trial and channel, with provenance). Statistics are
derived on read (results/summary.py). `PRAGMA user_version` holds the schema version.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from optbench import SCHEMA_VERSION, __version__
from optbench.errors import OptbenchError
from optbench.results.schema import EnergyReading, Metric, RunResult, Trial

STORE_NAME = "optbench.sqlite"

DDL = """
CREATE TABLE IF NOT EXISTS environments (
  id TEXT PRIMARY KEY, created_at TEXT NOT NULL, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  spec_key TEXT NOT NULL, recipe TEXT, model TEXT NOT NULL, backend TEXT NOT NULL,
  variant TEXT NOT NULL, batch_size INTEGER NOT NULL, device TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'skipped')), reason TEXT,
  quality_metric TEXT, quality_higher_is_better INTEGER,
  spec TEXT NOT NULL, env_id TEXT NOT NULL REFERENCES environments(id),
  optbench_version TEXT NOT NULL, schema_version INTEGER NOT NULL,
  git_sha TEXT, git_dirty INTEGER,
  started_at TEXT NOT NULL, finished_at TEXT NOT NULL, wall_s REAL,
  artifact TEXT, backend_info TEXT, details TEXT, phases TEXT, log_path TEXT
);
CREATE INDEX IF NOT EXISTS runs_spec ON runs(spec_key, env_id, status);
CREATE TABLE IF NOT EXISTS metrics (
  run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL, value REAL, unit TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS latency (
  run_id INTEGER NOT NULL REFERENCES runs(id), kind TEXT NOT NULL, n INTEGER NOT NULL,
  values_s BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
  run_id INTEGER NOT NULL REFERENCES runs(id), trial INTEGER NOT NULL, phase TEXT NOT NULL,
  window_s REAL NOT NULL, samples INTEGER NOT NULL, flags TEXT, telemetry TEXT,
  requests INTEGER
);
CREATE TABLE IF NOT EXISTS energy (
  run_id INTEGER NOT NULL REFERENCES runs(id), trial INTEGER NOT NULL, channel TEXT NOT NULL,
  energy_j REAL, window_s REAL NOT NULL, method TEXT NOT NULL, api TEXT NOT NULL,
  reads INTEGER, wraps INTEGER, flags TEXT, uncertainty_j REAL, reason TEXT, details TEXT,
  in_total INTEGER NOT NULL DEFAULT 1
);
"""


# Schema version -> statements that bring a store of that version to SCHEMA_VERSION.
MIGRATIONS = {1: ("ALTER TABLE trials ADD COLUMN requests INTEGER",)}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class StoredRun:
    """One run as read back: identity, spec, environment and its raw RunResult."""

    id: int
    spec_key: str
    spec: dict[str, Any]
    env_id: str
    result: RunResult
    optbench_version: str
    git_sha: str | None
    git_dirty: bool | None
    started_at: str
    finished_at: str
    wall_s: float | None
    log_path: str | None

    @property
    def model(self) -> str:
        return self.spec["model"]["ref"]

    @property
    def backend(self) -> str:
        """Backend name, with its non-default options when the recipe set any."""
        name, options = self.spec["backend"]["name"], self.spec["backend"]["options"]
        if not options:
            return name
        return f"{name}({','.join(f'{k}={v}' for k, v in options)})"

    @property
    def variant(self) -> str:
        return self.spec["variant"]["name"]

    @property
    def batch_size(self) -> int:
        return int(self.spec["batch_size"])

    @property
    def device(self) -> str:
        return self.spec["device"]


class Store:
    """The results database under an output directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30)
        self.db.row_factory = sqlite3.Row
        # The write lock makes the version check and an upgrade one step: two processes
        # opening an old store at once do not both migrate it.
        self.db.execute("BEGIN IMMEDIATE")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        has_tables = self.db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        if has_tables and version in MIGRATIONS:  # older stores are upgraded in place
            for step in MIGRATIONS[version]:
                self.db.execute(step)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            version = SCHEMA_VERSION
        self.db.commit()
        if has_tables and version != SCHEMA_VERSION:
            raise OptbenchError(
                f"{path} has store schema v{version}; this optbench writes v{SCHEMA_VERSION}. "
                "Use another --out directory or the optbench version that wrote it."
            )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(DDL)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.db.commit()

    @classmethod
    def open(cls, out_dir: Path, must_exist: bool = False) -> Store:
        path = out_dir / STORE_NAME
        if must_exist and not path.is_file():
            raise OptbenchError(f"no results store at {path}; run `optbench compare` or "
                                "`optbench run` first, or pass --out")
        return cls(path)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self.db
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

    def put_environment(self, env_id: str, data: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO environments VALUES (?, ?, ?)",
                       (env_id, utc_now(), json.dumps(data, sort_keys=True, default=str)))

    def environment(self, env_id: str) -> dict[str, Any]:
        row = self.db.execute("SELECT data FROM environments WHERE id=?", (env_id,)).fetchone()
        return json.loads(row["data"]) if row else {}

    def has_ok(self, spec_key: str, env_id: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM runs WHERE spec_key=? AND env_id=? AND status='ok' LIMIT 1",
            (spec_key, env_id)).fetchone()
        return row is not None

    def add_run(
        self, spec: dict[str, Any], spec_key: str, env_id: str, result: RunResult, *,
        git_sha: str | None, git_dirty: bool | None, started_at: str, finished_at: str,
        wall_s: float | None, log_path: str | None,
    ) -> int:
        """Write one finished run and all its raw data in a single transaction."""
        with self.transaction() as db:
            cur = db.execute(
                """INSERT INTO runs (spec_key, recipe, model, backend, variant, batch_size,
                device, status, reason, quality_metric, quality_higher_is_better, spec, env_id,
                optbench_version, schema_version, git_sha, git_dirty, started_at, finished_at,
                wall_s, artifact, backend_info, details, phases, log_path)
                VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (spec_key, spec.get("recipe"), spec["model"]["ref"], spec["backend"]["name"],
                 spec["variant"]["name"], spec["batch_size"], spec["device"], result.status,
                 result.reason, result.quality_metric, int(result.quality_higher_is_better),
                 json.dumps(spec, sort_keys=True), env_id, __version__, SCHEMA_VERSION,
                 git_sha, None if git_dirty is None else int(git_dirty), started_at,
                 finished_at, wall_s, json.dumps(result.artifact, default=str),
                 json.dumps(result.backend, default=str), json.dumps(result.details, default=str),
                 json.dumps(result.phases_s), log_path))
            run_id = int(cur.lastrowid)
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)",
                           [(run_id, m.name, m.value, m.unit) for m in result.metrics])
            for kind, values in (("batch", result.latencies_s),
                                 ("device", result.device_latencies_s)):
                if values:
                    db.execute("INSERT INTO latency VALUES (?, ?, ?, ?)",
                               (run_id, kind, len(values), array("d", values).tobytes()))
            for trial in result.trials:
                db.execute("INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (run_id, trial.index, trial.phase, trial.window_s, trial.samples,
                            json.dumps(list(trial.flags)), json.dumps(trial.telemetry),
                            trial.requests))
                db.executemany(
                    "INSERT INTO energy VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, trial.index, r.channel, r.energy_j, r.window_s, r.method, r.api,
                      r.reads, r.wraps, json.dumps(list(r.flags)), r.uncertainty_j, r.reason,
                      json.dumps(r.details, default=str), int(r.in_total))
                     for r in trial.readings])
        return run_id

    def runs(self, status: str | None = None) -> list[StoredRun]:
        """Every run (optionally of one status), oldest first, with raw data attached."""
        query = "SELECT * FROM runs" + (" WHERE status=?" if status else "") + " ORDER BY id"
        rows = self.db.execute(query, (status,) if status else ()).fetchall()
        return [self._load(row) for row in rows]

    def _load(self, row: sqlite3.Row) -> StoredRun:
        run_id = row["id"]
        metrics = [Metric(r["name"], r["value"], r["unit"]) for r in self.db.execute(
            "SELECT name, value, unit FROM metrics WHERE run_id=?", (run_id,))]
        latencies = {r["kind"]: array("d", r["values_s"]).tolist() for r in self.db.execute(
            "SELECT kind, values_s FROM latency WHERE run_id=?", (run_id,))}
        readings: dict[int, list[EnergyReading]] = {}
        for r in self.db.execute("SELECT * FROM energy WHERE run_id=? ORDER BY rowid", (run_id,)):
            readings.setdefault(r["trial"], []).append(EnergyReading(
                channel=r["channel"], energy_j=r["energy_j"], window_s=r["window_s"],
                method=r["method"], api=r["api"], reads=r["reads"] or 0, wraps=r["wraps"] or 0,
                flags=tuple(json.loads(r["flags"] or "[]")), uncertainty_j=r["uncertainty_j"],
                reason=r["reason"], details=json.loads(r["details"] or "{}"),
                in_total=bool(r["in_total"])))
        trials = [Trial(t["trial"], t["phase"], t["window_s"], t["samples"],
                        tuple(readings.get(t["trial"], [])), tuple(json.loads(t["flags"] or "[]")),
                        json.loads(t["telemetry"] or "{}"), t["requests"])
                  for t in self.db.execute("SELECT * FROM trials WHERE run_id=? ORDER BY trial",
                                           (run_id,))]
        result = RunResult(
            status=row["status"], reason=row["reason"], quality_metric=row["quality_metric"],
            quality_higher_is_better=bool(row["quality_higher_is_better"]), metrics=metrics,
            latencies_s=latencies.get("batch", []),
            device_latencies_s=latencies.get("device", []), trials=trials,
            artifact=json.loads(row["artifact"] or "{}"),
            backend=json.loads(row["backend_info"] or "{}"),
            details=json.loads(row["details"] or "{}"), phases_s=json.loads(row["phases"] or "{}"))
        return StoredRun(
            id=run_id, spec_key=row["spec_key"], spec=json.loads(row["spec"]),
            env_id=row["env_id"], result=result, optbench_version=row["optbench_version"],
            git_sha=row["git_sha"],
            git_dirty=None if row["git_dirty"] is None else bool(row["git_dirty"]),
            started_at=row["started_at"], finished_at=row["finished_at"], wall_s=row["wall_s"],
            log_path=row["log_path"])
