"""SQLite store (stdlib sqlite3, WAL): one transaction per finished run, raw data kept.

Tables: environments, runs, metrics (long format with units), latency (raw per-iteration
arrays), trials and energy (per trial and channel, with provenance). Statistics are
derived on read (results/summary.py). `PRAGMA user_version` holds the schema version.

The sweep opens it writable (created, migrated, WAL); report, export, recommend and the
Python API open it read-only (`readonly=True`), which writes nothing. SQLite's environment
errors (a file that is not a store, a damaged one, a lock held past the busy timeout, a
full or read-only disk) become StoreError subclasses naming the file and what to do.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import urllib.parse
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Union

from optbench import SCHEMA_VERSION, __version__
from optbench.env import env_id
from optbench.errors import OptbenchError
from optbench.results.identity import spec_key
from optbench.results.schema import EnergyReading, Metric, RunResult, Trial

log = logging.getLogger(__name__)

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


# sqlite3 primary result codes the store turns into errors a user can act on; the rest
# (SQLITE_ERROR, constraints, misuse) are programming errors and stay exceptions.
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 3, 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL, SQLITE_NOTADB = 11, 13, 14, 15, 26
# Python 3.10's exceptions carry no code: the message says which.
MESSAGES = (("database is locked", SQLITE_BUSY), ("database is busy", SQLITE_BUSY),
            ("table is locked", SQLITE_LOCKED), ("not a database", SQLITE_NOTADB),
            ("malformed", SQLITE_CORRUPT), ("disk is full", SQLITE_FULL),
            ("readonly database", SQLITE_READONLY), ("disk i/o error", SQLITE_IOERR),
            ("unable to open", SQLITE_CANTOPEN))
BUSY_TIMEOUT_S = 30.0
OTHER_OUT = "pass another --out"

# Schema version v -> the steps that bring a store of version v to v + 1: SQL statements,
# or Python functions of the connection. They run in the writable open's transaction.
Step = Union[str, Callable[[sqlite3.Connection], None]]


def _rekey(db: sqlite3.Connection) -> None:
    """v2 -> v3: spec keys without the timeout (results/identity.py), recomputed from each
    run's stored spec, so resume and the report see one configuration, not two."""
    rows = db.execute("SELECT id, spec FROM runs").fetchall()
    db.executemany("UPDATE runs SET spec_key=? WHERE id=?",
                   [(spec_key(json.loads(spec)), run_id) for run_id, spec in rows])


def reid_environments(version: int) -> Step:
    """A step that gives each environment the id this optbench computes for the same
    machine: the fingerprint holds the schema version (`env.fingerprint`), so without it
    a migrated store's runs would match no environment on resume and be measured again.
    Environments that differed only in that field become one. The stored fingerprint is
    kept as it was recorded; each run also keeps the schema version it was written with.
    A schema bump adds this step while the fingerprint holds the version."""

    def step(db: sqlite3.Connection) -> None:
        for old, data in db.execute("SELECT id, data FROM environments").fetchall():
            fingerprint = json.loads(data)
            if "schema_version" not in fingerprint:
                continue
            new = env_id({**fingerprint, "schema_version": version})
            if new == old:
                continue
            db.execute("INSERT OR IGNORE INTO environments SELECT ?, created_at, data "
                       "FROM environments WHERE id=?", (new, old))
            db.execute("UPDATE runs SET env_id=? WHERE env_id=?", (new, old))
            db.execute("DELETE FROM environments WHERE id=?", (old,))

    return step


MIGRATIONS: dict[int, tuple[Step, ...]] = {
    1: ("ALTER TABLE trials ADD COLUMN requests INTEGER",),
    2: (_rekey, reid_environments(3)),
}
# A read-only open never migrates; it reads an older store as its migrations would leave it:
# a column they add reads as None (`added`), keys before v3 are recomputed from the spec.
KEYS_WITHOUT_TIMEOUT = 3
TABLES = ("environments", "runs", "metrics", "latency", "trials", "energy")


class StoreError(OptbenchError):
    """The store at `path` cannot be used as asked; the message says why and what to do."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(message)


class NotAStore(StoreError):
    """A file under the store's name that is not an optbench store (garbage, empty, another
    program's database). It is never written to."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(path, f"{path} is not an optbench store ({why}): move it away or "
                               f"{OTHER_OUT}")


class StoreDamaged(StoreError):
    """A store that is truncated or whose pages do not parse."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(path, f"{path} is damaged ({why}): restore it from a copy, or move "
                               f"it away and {OTHER_OUT}")


class StoreLocked(StoreError):
    """Another connection held the store's lock for longer than the busy timeout.

    Attributes:
        path: the database file.
        waited_s: how long this process waited for the lock before giving up.
    """

    def __init__(self, path: Path, waited_s: float) -> None:
        self.waited_s = waited_s
        super().__init__(path, f"{path} is locked by another process (waited {waited_s:.1f} s):"
                               f" let the other optbench finish and retry, or {OTHER_OUT}")


class StoreUnwritable(StoreError):
    """The store cannot be created or written: disk full, read-only, an I/O error."""

    def __init__(self, path: Path, why: str, advice: str = f"free some space, or {OTHER_OUT}"
                 ) -> None:
        super().__init__(path, f"cannot write {path} ({why}): {advice}")


class StoreVersionError(StoreError):
    """A store of a schema version this optbench neither writes nor can upgrade."""

    def __init__(self, path: Path, version: int) -> None:
        self.version = version
        super().__init__(path, f"{path} has store schema v{version}; this optbench writes "
                               f"v{SCHEMA_VERSION}. Use another --out directory or the optbench "
                               "version that wrote it.")


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


def added(row: sqlite3.Row, column: str) -> Any:
    """A column a migration added (ADDED_COLUMNS); None in a store read before it."""
    return row[column] if column in row.keys() else None


def _code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    text = str(exc).lower()
    return next((c for needle, c in MESSAGES if needle in text), None)


def check_header(path: Path) -> None:
    """Refuse a file that is not an SQLite database, or is shorter than its header says.

    The size check needs a complete main file, which holds when no -wal file has frames
    (the last connection checkpoints and deletes it); with frames, SQLite's own reads judge.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise StoreError(path, f"cannot read {path}: {exc.strerror}: check its permissions, "
                               f"or {OTHER_OUT}") from exc
    if not header.startswith(b"SQLite format 3\x00"[:len(header)]):
        raise NotAStore(path, "file is not a database")
    if len(header) < 100:
        raise StoreDamaged(path, f"truncated to {size} bytes")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    wal = path.with_name(path.name + "-wal")
    complete = not wal.exists() or wal.stat().st_size == 0
    # The header's page count is valid when its change counters agree (SQLite >= 3.7.0).
    if complete and header[24:28] == header[92:96] and size < pages * page_size:
        raise StoreDamaged(path, f"truncated: {size} of {pages * page_size} bytes")


class Store:
    """The results database under an output directory.

    Writable (the sweep): created when missing, older schemas migrated in place, WAL mode.
    Read-only (report, export, recommend, the Python API): opened with `mode=ro`, never
    created, migrated or written, so a store on read-only media can be read and a file that
    is not a store is left as it is; readers do not wait for a writer (WAL).
    `busy_timeout_s`: how long to wait for another process's lock before StoreLocked.
    """

    def __init__(self, path: Path, *, readonly: bool = False,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.readonly = readonly
        self.busy_timeout_s = busy_timeout_s
        self.version = SCHEMA_VERSION
        self.db = self._open_readonly() if readonly else self._open_writable()

    @classmethod
    def open(cls, out_dir: Path, must_exist: bool = False, readonly: bool = False,
             busy_timeout_s: float = BUSY_TIMEOUT_S) -> Store:
        """The store of `out_dir`; `readonly` implies `must_exist`."""
        path = out_dir / STORE_NAME
        if (must_exist or readonly) and not path.is_file():
            raise OptbenchError(f"no results store at {path}; run `optbench compare` or "
                                "`optbench run` first, or pass --out")
        return cls(path, readonly=readonly, busy_timeout_s=busy_timeout_s)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _errors(self, writing: bool = False) -> Iterator[None]:
        """sqlite3's environment errors (locks, full disks, damaged files) as StoreErrors."""
        started = time.monotonic()
        try:
            yield
        except sqlite3.Error as exc:
            error = self._translate(exc, time.monotonic() - started, writing)
            if error is None:
                raise
            raise error from exc

    def _translate(self, exc: sqlite3.Error, waited_s: float, writing: bool
                   ) -> StoreError | None:
        code, path, what = _code(exc), self.path, str(exc)
        if code in (SQLITE_BUSY, SQLITE_LOCKED):
            return StoreLocked(path, waited_s)
        if code == SQLITE_NOTADB:
            return NotAStore(path, what)
        if code == SQLITE_CORRUPT:
            return StoreDamaged(path, what)
        if code == SQLITE_FULL:
            return StoreUnwritable(path, what)
        if code == SQLITE_READONLY:
            return StoreUnwritable(path, f"{what}: the file, its directory or its file system "
                                         "is read-only", f"make it writable, or {OTHER_OUT}")
        if code == SQLITE_IOERR and writing:
            return StoreUnwritable(path, f"{what}: a full disk, the file-size limit or a "
                                         "failing disk")
        if code in (SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_PROTOCOL):
            return StoreError(path, f"cannot {'write' if writing else 'read'} {path} ({what}): "
                                    f"check it and its directory's permissions, or {OTHER_OUT}")
        return None

    def _open_writable(self) -> sqlite3.Connection:
        path, existed = self.path, self.path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnwritable(path, f"cannot create {exc.filename or path.parent}: "
                                        f"{exc.strerror}", OTHER_OUT) from exc
        if existed and path.is_file() and path.stat().st_size:
            check_header(path)
        db = None
        try:
            with self._errors(writing=True):
                db = sqlite3.connect(path, timeout=self.busy_timeout_s)
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA foreign_keys=ON")  # a no-op inside a transaction
                # The write lock makes the version check and an upgrade one step: two
                # processes opening an old store at once do not both migrate it.
                db.execute("BEGIN IMMEDIATE")
                version = db.execute("PRAGMA user_version").fetchone()[0]
                tables = self._tables(db)
                if tables:
                    self._check(tables, version)
                    for old in range(version, SCHEMA_VERSION):  # older stores upgraded in place
                        for step in MIGRATIONS[old]:
                            if isinstance(step, str):
                                db.execute(step)
                            else:
                                step(db)
                for statement in DDL.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                db.commit()
                db.execute("PRAGMA journal_mode=WAL")
        except BaseException as exc:
            if db is not None:
                db.close()  # rolls back what this open began
            if not existed and isinstance(exc, StoreUnwritable):  # no half-made store left
                for leftover in ("", "-journal", "-wal", "-shm"):
                    path.with_name(path.name + leftover).unlink(missing_ok=True)
            raise
        return db

    def _open_readonly(self) -> sqlite3.Connection:
        path = self.path
        if path.stat().st_size == 0:  # SQLite would call it an empty database
            raise NotAStore(path, "empty file")
        check_header(path)
        # The path as given (relative ones too: SQLite resolves them as open() does),
        # percent-encoded so '?', '#' and '%' in a directory name stay part of it.
        uri = f"file:{urllib.parse.quote(os.fspath(path))}?mode=ro"
        db = None
        try:
            with self._errors():
                db = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout_s)
                try:
                    tables = self._tables(db)
                except sqlite3.OperationalError as exc:
                    if _code(exc) not in (SQLITE_READONLY, SQLITE_CANTOPEN):
                        raise
                    # A WAL store in a directory we cannot write, with no -shm beside it
                    # (copied to read-only media; SQLite deletes -wal and -shm on a clean
                    # close), cannot be opened with mode=ro: the -shm index cannot be made.
                    # `immutable=1` reads the main file without locks or -shm. Safe enough
                    # here: with no -shm no connection has the store open (each one maps
                    # it), and we cannot write there, so only another user could start a
                    # writer while we read. A leftover -wal (a writer that crashed) is not
                    # read: its runs are missing until a writable open recovers them.
                    db.close()
                    if path.with_name(path.name + "-wal").exists():
                        log.warning("%s: read without its -wal file (read-only directory); "
                                    "the newest runs may be missing", path)
                    db = sqlite3.connect(f"{uri}&immutable=1", uri=True,
                                         timeout=self.busy_timeout_s)
                    tables = self._tables(db)
                db.row_factory = sqlite3.Row
                self.version = db.execute("PRAGMA user_version").fetchone()[0]
                self._check(tables, self.version)
                missing = sorted(set(TABLES) - tables)
                if missing:
                    raise NotAStore(path, f"no table {', '.join(missing)}")
        except BaseException:
            if db is not None:
                db.close()
            raise
        return db

    @staticmethod
    def _tables(db: sqlite3.Connection) -> set[str]:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _check(self, tables: set[str], version: int) -> None:
        """Refuse another program's database and schemas there is no way up from."""
        if "runs" not in tables:
            raise NotAStore(self.path, "no optbench tables" if not tables else
                            f"tables {', '.join(sorted(tables))}, none of them optbench's")
        if version > SCHEMA_VERSION or any(
                v not in MIGRATIONS for v in range(version, SCHEMA_VERSION)):
            raise StoreVersionError(self.path, version)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, its lock taken up front (so a busy store fails at BEGIN,
        before any row). On any error it is rolled back and the Store can be used again."""
        try:
            with self._errors(writing=True):
                if not self.db.in_transaction:
                    self.db.execute("BEGIN IMMEDIATE")
                yield self.db
                self.db.commit()
        except BaseException:
            try:
                self.db.rollback()
            except sqlite3.Error as exc:  # a connection SQLite already rolled back
                log.debug("rollback of %s: %s", self.path, exc)
            raise

    def put_environment(self, env_id: str, data: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO environments VALUES (?, ?, ?)",
                       (env_id, utc_now(), json.dumps(data, sort_keys=True, default=str)))

    def environment(self, env_id: str) -> dict[str, Any]:
        with self._errors():
            row = self.db.execute("SELECT data FROM environments WHERE id=?",
                                  (env_id,)).fetchone()
        return json.loads(row["data"]) if row else {}

    def has_ok(self, key: str, env_id: str) -> bool:
        with self._errors():
            if self.version < KEYS_WITHOUT_TIMEOUT:  # an old store read without migrating
                return any(spec_key(json.loads(r["spec"])) == key for r in self.db.execute(
                    "SELECT spec FROM runs WHERE env_id=? AND status='ok'", (env_id,)))
            row = self.db.execute(
                "SELECT 1 FROM runs WHERE spec_key=? AND env_id=? AND status='ok' LIMIT 1",
                (key, env_id)).fetchone()
        return row is not None

    def add_run(
        self, spec: dict[str, Any], spec_key: str, env_id: str, result: RunResult, *,
        git_sha: str | None, git_dirty: bool | None, started_at: str, finished_at: str,
        wall_s: float | None, log_path: str | None,
    ) -> int:
        """Write one finished run and all its raw data in a single transaction.

        Raises StoreLocked when another process holds the lock past the busy timeout,
        StoreUnwritable on a full disk or read-only store; either way nothing of the run is
        written and the call can be retried on the same Store.
        """
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
        with self._errors():
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
                        json.loads(t["telemetry"] or "{}"), added(t, "requests"))
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
        spec = json.loads(row["spec"])
        return StoredRun(
            id=run_id, spec=spec, spec_key=(spec_key(spec) if self.version <
                                            KEYS_WITHOUT_TIMEOUT else row["spec_key"]),
            env_id=row["env_id"], result=result, optbench_version=row["optbench_version"],
            git_sha=row["git_sha"],
            git_dirty=None if row["git_dirty"] is None else bool(row["git_dirty"]),
            started_at=row["started_at"], finished_at=row["finished_at"], wall_s=row["wall_s"],
            log_path=row["log_path"])
