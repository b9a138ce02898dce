"""SQLite store (stdlib sqlite3, WAL): one transaction per finished run, raw data kept.

Tables: environments, runs, metrics (long format with units), latency (raw per-iteration
arrays) with latency_stats beside it (each array's n, p50, p90, p99 and mean, computed when
it is written), trials and energy (per trial and channel, with provenance), outcomes
(per-sample quality outcomes by metric: uint8 when every value is 0 or 1, else float64).
Other statistics are derived on read (results/summary.py). `PRAGMA user_version` holds the
schema version.

Reads are bulk: `iter_runs` loads runs a chunk at a time with one query per table, so a
store of 10,000 runs takes a few dozen queries, not four per run. Raw latency arrays are
the store's bulk (most of its bytes); `raw=False` leaves them on disk: a StoredRun then
carries the stored statistics (`latency_stats`) and reads an array only when asked
(`raw_latencies`).

The sweep opens it writable (created, migrated, WAL); report, export, recommend and the
Python API open it read-only (`readonly=True`), which writes nothing. SQLite's environment
errors (a file that is not a store, a damaged one, a lock held past the busy timeout, a
full or read-only disk) become StoreErrors naming the file and what to do.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Union

import numpy as np

from optbench import SCHEMA_VERSION, __version__
from optbench.env import env_id
from optbench.errors import OptbenchError
from optbench.results.identity import MACHINE_PREFIX, WHERE_SQL, spec_key, where
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
""" + """
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id);
CREATE INDEX IF NOT EXISTS latency_run ON latency(run_id);
CREATE INDEX IF NOT EXISTS trials_run ON trials(run_id);
CREATE INDEX IF NOT EXISTS energy_run ON energy(run_id);
"""
# Schema v4: beside each raw latency array, its statistics (what every reader needs, so
# the arrays stay on disk), and per-sample quality outcomes.
LATENCY_STATS_DDL = """
CREATE TABLE IF NOT EXISTS latency_stats (
  run_id INTEGER NOT NULL REFERENCES runs(id), kind TEXT NOT NULL, n INTEGER NOT NULL,
  p50_s REAL NOT NULL, p90_s REAL NOT NULL, p99_s REAL NOT NULL, mean_s REAL NOT NULL,
  PRIMARY KEY (run_id, kind)
)"""
OUTCOMES_DDL = """
CREATE TABLE IF NOT EXISTS outcomes (
  run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL, n INTEGER NOT NULL,
  dtype TEXT NOT NULL CHECK (dtype IN ('u1', 'f8')), data BLOB NOT NULL,
  PRIMARY KEY (run_id, name)
)"""
DDL += LATENCY_STATS_DDL + ";" + OUTCOMES_DDL + ";"
# Little-endian on disk whatever the machine: float64 arrays, and 0/1 outcomes as bytes.
F8, U1 = np.dtype("<f8"), np.dtype("u1")


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


@dataclass(frozen=True)
class LatencyStats:
    """One raw latency array summarised: its length, percentiles and mean, in seconds.

    Percentiles interpolate linearly between order statistics, exactly as
    `results.stats.percentile` (numpy's default method) does.
    """

    n: int
    p50_s: float
    p90_s: float
    p99_s: float
    mean_s: float

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> LatencyStats | None:
        """The statistics of `values`; None when there are none."""
        ordered = np.sort(np.asarray(values, dtype=np.float64))
        if not ordered.size:
            return None
        return cls(int(ordered.size), _sorted_percentile(ordered, 50),
                   _sorted_percentile(ordered, 90), _sorted_percentile(ordered, 99),
                   float(ordered.mean()))


def _sorted_percentile(ordered: np.ndarray, q: float) -> float:
    """`results.stats.percentile` on an already sorted array: the same arithmetic."""
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    low, high = float(ordered[lo]), float(ordered[hi])
    return low + (high - low) * (pos - lo)


def _latency_stats(db: sqlite3.Connection) -> None:
    """v3 -> v4: the statistics of every stored latency array, a few hundred at a time (the
    arrays are most of a store's bytes; they are read, never rewritten)."""
    db.execute(LATENCY_STATS_DDL)
    last = 0
    while True:
        rows = db.execute(
            "SELECT rowid, run_id, kind, values_s FROM latency WHERE rowid > ? AND NOT EXISTS "
            "(SELECT 1 FROM latency_stats s WHERE s.run_id=latency.run_id AND "
            "s.kind=latency.kind) ORDER BY rowid LIMIT 256", (last,)).fetchall()
        if not rows:
            return
        db.executemany("INSERT OR REPLACE INTO latency_stats VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(run_id, kind, *_stats_row(stats)) for _, run_id, kind, blob in rows
                        if (stats := LatencyStats.of(np.frombuffer(blob, F8))) is not None])
        last = rows[-1][0]


def _stats_row(stats: LatencyStats) -> tuple[int, float, float, float, float]:
    return stats.n, stats.p50_s, stats.p90_s, stats.p99_s, stats.mean_s


MIGRATIONS: dict[int, tuple[Step, ...]] = {
    1: ("ALTER TABLE trials ADD COLUMN requests INTEGER",),
    2: (_rekey, reid_environments(3)),
    3: (_latency_stats, reid_environments(4)),  # and the outcomes table and indexes (DDL)
}
# A read-only open never migrates; it reads an older store as its migrations would leave it:
# a column they add reads as None (trials.requests), keys before v3 are recomputed from the spec,
# latency statistics before v4 are computed from the raw arrays, outcomes before v4 are none.
KEYS_WITHOUT_TIMEOUT = 3
TABLES = ("environments", "runs", "metrics", "latency", "trials", "energy")  # every version's
CHUNK_RUNS = 500  # runs read per round of queries: bounds a bulk read's memory


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


LATENCY_KINDS = ("batch", "device")  # latency.kind: RunResult.latencies_s, device_latencies_s


@dataclass
class StoredRun:
    """One run as read back: identity, spec, environment and its raw RunResult.

    `latency`: the stored statistics of each latency array by kind ("batch", "device").
    A run read with `raw=False` has empty `result.latencies_s` and `device_latencies_s`:
    `latency_stats` gives their statistics, `raw_latencies` reads an array from the store.
    `result.outcomes` holds float64 numpy arrays (0.0/1.0 for accuracies and agreements).
    """

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
    latency: dict[str, LatencyStats] = field(default_factory=dict)
    loader: Callable[[int, str], list[float]] | None = field(default=None, repr=False,
                                                            compare=False)

    def _loaded(self, kind: str) -> list[float]:
        if kind not in LATENCY_KINDS:
            raise ValueError(f"unknown latency kind {kind!r}; one of {', '.join(LATENCY_KINDS)}")
        return self.result.latencies_s if kind == "batch" else self.result.device_latencies_s

    def latency_stats(self, kind: str = "batch") -> LatencyStats | None:
        """Statistics of the run's `kind` latencies: as stored, else from the raw values the
        result holds (a StoredRun made by hand); None when it has none."""
        stats = self.latency.get(kind)
        return stats if stats is not None else LatencyStats.of(self._loaded(kind))

    def raw_latencies(self, kind: str = "batch") -> list[float]:
        """The run's raw `kind` latencies, in seconds: the result's when loaded, else read
        from its store (which must still be open)."""
        values = self._loaded(kind)
        if values or self.loader is None or kind not in self.latency:
            return list(values)
        return self.loader(self.id, kind)

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
        self.tables: set[str] = set()  # the tables this store has (an older one lacks some)
        self._requests: bool | None = None  # whether trials has `requests` (v1 has not)
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
                self.tables = self._tables(db)
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
                self.tables = tables
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

    def has_ok(self, key: str, env_id: str, machine: str | None = None) -> bool:
        """Whether an `ok` run of the key is stored: measured in `env_id`, or, for a spec
        an executor placed on a machine kind, on any node of that kind."""
        place = env_id if machine is None else MACHINE_PREFIX + machine
        with self._errors():
            if self.version < KEYS_WITHOUT_TIMEOUT:  # an old store read without migrating
                return any(spec_key(s := json.loads(r["spec"])) == key
                           and where(s, r["env_id"]) == place for r in self.db.execute(
                               "SELECT spec, env_id FROM runs WHERE status='ok'"))
            row = self.db.execute(
                f"SELECT 1 FROM runs WHERE spec_key=? AND status='ok' AND {WHERE_SQL}=? "
                "LIMIT 1", (key, place)).fetchone()
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
                if len(values):
                    raw = np.asarray(values, dtype=F8)
                    stats = LatencyStats.of(raw)
                    assert stats is not None
                    db.execute("INSERT INTO latency VALUES (?, ?, ?, ?)",
                               (run_id, kind, len(raw), raw.tobytes()))
                    db.execute("INSERT INTO latency_stats VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (run_id, kind, *_stats_row(stats)))
            db.executemany("INSERT INTO outcomes VALUES (?, ?, ?, ?, ?)",
                           [(run_id, name, *encode_outcomes(values))
                            for name, values in result.outcomes.items()])
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

    def runs(self, status: str | None = None, raw: bool = True) -> list[StoredRun]:
        """Every run (optionally of one status), oldest first, with raw data attached;
        `raw=False` leaves the raw latency arrays on disk (see StoredRun)."""
        return list(self.iter_runs(status=status, raw=raw))

    def run_keys(self) -> list[tuple[int, str, str]]:
        """(id, spec key, where) of every run, oldest first, `where` its environment id or,
        placed by an executor, its machine kind (identity.where): enough to choose which
        runs to load (report.data reads only each configuration's latest)."""
        with self._errors():
            if self.version < KEYS_WITHOUT_TIMEOUT:
                return [(r["id"], spec_key(s := json.loads(r["spec"])), where(s, r["env_id"]))
                        for r in self.db.execute("SELECT id, spec, env_id FROM runs ORDER BY id")]
            return [(r["id"], r["spec_key"], r["place"]) for r in self.db.execute(
                f"SELECT id, spec_key, {WHERE_SQL} AS place FROM runs ORDER BY id")]

    def iter_runs(self, ids: Iterable[int] | None = None, status: str | None = None,
                  raw: bool = True) -> Iterator[StoredRun]:
        """The runs with these ids (default: all, or all of one status), oldest first,
        read CHUNK_RUNS at a time with one query per table: memory holds one chunk's raw
        data, not the store's. Ids that are not in the store are skipped."""
        with self._errors():
            if ids is None:
                query = "SELECT id FROM runs" + (" WHERE status=?" if status else "")
                ids = [r[0] for r in self.db.execute(query, (status,) if status else ())]
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), CHUNK_RUNS):
            with self._errors():
                runs = self._load_chunk(wanted[start:start + CHUNK_RUNS], raw, status)
            yield from runs

    def latencies(self, run_id: int, kind: str = "batch") -> list[float]:
        """One run's raw latency array of `kind` ("batch" or "device"), in seconds."""
        try:
            with self._errors():
                row = self.db.execute("SELECT values_s FROM latency WHERE run_id=? AND kind=?",
                                      (run_id, kind)).fetchone()
        except sqlite3.ProgrammingError as exc:  # the store was closed after the read
            raise StoreError(self.path, f"{self.path} was closed: reopen it to read run "
                                        f"{run_id}'s raw latencies") from exc
        return [] if row is None else np.frombuffer(row[0], F8).tolist()

    def _children(self, table: str, columns: str, marks: str, ids: list[int],
                  order: str = "run_id, rowid") -> sqlite3.Cursor:
        """Rows of a table that belong to the runs `ids`, as plain tuples (`columns`)."""
        cursor = self.db.cursor()
        cursor.row_factory = None
        return cursor.execute(f"SELECT {columns} FROM {table} WHERE run_id IN ({marks}) "
                              f"ORDER BY {order}", ids)

    def _has_requests(self) -> bool:
        """Whether trials has v1's missing `requests` column (a v1 store read read-only)."""
        if self._requests is None:
            self._requests = any(r[1] == "requests" for r in
                                 self.db.execute("PRAGMA table_info(trials)"))
        return self._requests

    def _load_chunk(self, ids: list[int], raw: bool, status: str | None) -> list[StoredRun]:
        """The runs of `ids` with one query per table (each served by its run_id index)."""
        marks = ",".join("?" * len(ids))
        query = f"SELECT * FROM runs WHERE id IN ({marks})" + (
            " AND status=?" if status else "") + " ORDER BY id"
        rows = self.db.execute(query, [*ids, status] if status else ids).fetchall()
        metrics: dict[int, list[Metric]] = defaultdict(list)
        for r in self._children("metrics", "run_id, name, value, unit", marks, ids):
            metrics[r[0]].append(Metric(r[1], r[2], r[3]))
        stats: dict[int, dict[str, LatencyStats]] = defaultdict(dict)
        values: dict[int, dict[str, list[float]]] = defaultdict(dict)
        if "latency_stats" in self.tables:
            for r in self._children("latency_stats", "run_id, kind, n, p50_s, p90_s, p99_s, "
                                    "mean_s", marks, ids, "run_id, kind"):
                stats[r[0]][r[1]] = LatencyStats(*r[2:])
        if raw or "latency_stats" not in self.tables:  # before v4: statistics from the arrays
            for run_id, kind, blob in self._children("latency", "run_id, kind, values_s",
                                                     marks, ids):
                array = np.frombuffer(blob, F8)
                if kind not in stats[run_id]:
                    computed = LatencyStats.of(array)
                    if computed is not None:
                        stats[run_id][kind] = computed
                if raw:
                    values[run_id][kind] = array.tolist()
        outcomes: dict[int, dict[str, np.ndarray]] = defaultdict(dict)
        if "outcomes" in self.tables:
            for run_id, name, dtype, blob in self._children("outcomes", "run_id, name, dtype, "
                                                            "data", marks, ids):
                outcomes[run_id][name] = decode_outcomes(dtype, blob)
        readings: dict[tuple[int, int], list[EnergyReading]] = defaultdict(list)
        flags = _JsonTuples()
        energy = self._children("energy", "run_id, trial, channel, energy_j, window_s, method, "
                                "api, reads, wraps, flags, uncertainty_j, reason, details, "
                                "in_total", marks, ids).fetchall()
        for r, details in zip(energy, _json_dicts(r[12] for r in energy)):
            readings[(r[0], r[1])].append(EnergyReading(
                channel=r[2], energy_j=r[3], window_s=r[4], method=r[5], api=r[6],
                reads=r[7] or 0, wraps=r[8] or 0, flags=flags[r[9]], uncertainty_j=r[10],
                reason=r[11], details=details, in_total=bool(r[13])))
        trials: dict[int, list[Trial]] = defaultdict(list)
        requests = "requests" if self._has_requests() else "NULL"  # a v1 store has none
        rows_t = self._children("trials", f"run_id, trial, phase, window_s, samples, flags, "
                                f"telemetry, {requests}", marks, ids, "run_id, trial").fetchall()
        for t, telemetry in zip(rows_t, _json_dicts(t[6] for t in rows_t)):
            trials[t[0]].append(Trial(t[1], t[2], t[3], t[4], tuple(readings.get((t[0], t[1]), ())),
                                      flags[t[5]], telemetry, t[7]))
        loader = None if raw else self.latencies
        return [self._run(row, metrics[row["id"]], stats[row["id"]], values[row["id"]],
                          trials[row["id"]], outcomes[row["id"]], loader) for row in rows]

    def _run(self, row: sqlite3.Row, metrics: list[Metric], stats: dict[str, LatencyStats],
             values: dict[str, list[float]], trials: list[Trial],
             outcomes: dict[str, np.ndarray],
             loader: Callable[[int, str], list[float]] | None) -> StoredRun:
        result = RunResult(
            status=row["status"], reason=row["reason"], quality_metric=row["quality_metric"],
            quality_higher_is_better=bool(row["quality_higher_is_better"]), metrics=metrics,
            latencies_s=values.get("batch", []), device_latencies_s=values.get("device", []),
            trials=trials, artifact=_json_dict(row["artifact"]),
            backend=_json_dict(row["backend_info"]), details=_json_dict(row["details"]),
            phases_s=_json_dict(row["phases"]), outcomes=outcomes)  # type: ignore[arg-type]
        spec = json.loads(row["spec"])
        return StoredRun(
            id=row["id"], spec=spec, spec_key=(spec_key(spec) if self.version <
                                               KEYS_WITHOUT_TIMEOUT else row["spec_key"]),
            env_id=row["env_id"], result=result, optbench_version=row["optbench_version"],
            git_sha=row["git_sha"],
            git_dirty=None if row["git_dirty"] is None else bool(row["git_dirty"]),
            started_at=row["started_at"], finished_at=row["finished_at"], wall_s=row["wall_s"],
            log_path=row["log_path"], latency=stats, loader=loader)


def encode_outcomes(values: Sequence[float] | np.ndarray) -> tuple[int, str, bytes]:
    """(n, dtype, bytes) of per-sample outcomes: one byte each when every value is 0 or 1
    (accuracies, agreements), else float64 (a perplexity window's mean NLL)."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if np.all((array == 0) | (array == 1)):
        return len(array), "u1", array.astype(U1).tobytes()
    return len(array), "f8", array.astype(F8).tobytes()


def decode_outcomes(dtype: str, blob: bytes) -> np.ndarray:
    """Stored outcomes as a float64 array (its own copy: writable)."""
    return np.frombuffer(blob, U1 if dtype == "u1" else F8).astype(np.float64)


def _json_dict(text: str | None) -> Any:
    return json.loads(text) if text and text != "{}" else {}


def _json_dicts(texts: Iterable[str | None]) -> list[Any]:
    """Many small JSON texts (a chunk's readings' details) parsed in one call: the parser's
    per-call cost is most of a small text's. Missing ones read as {}."""
    return json.loads("[" + ",".join(t or "{}" for t in texts) + "]")


class _JsonTuples(dict):  # type: ignore[type-arg]
    """JSON lists (flags) as tuples, each distinct text parsed once (tuples are immutable,
    so readings share them safely)."""

    def __missing__(self, text: str | None) -> tuple[Any, ...]:
        value = tuple(json.loads(text or "[]"))
        self[text] = value
        return value
