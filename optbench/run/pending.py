"""Finished measurements the store could not take yet: kept on disk, never thrown away.

When the store stays locked (a database browser, another tool) past the sweep's patience,
the run's record is written to OUT/pending/<id>.json instead: everything `Store.add_run`
needs, plus the environment it was measured in. `import_pending` adds such files to the
store and removes each one only once its run is committed. The sweep does so when it
starts; `optbench import --out OUT` does it on request.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from optbench.cache import atomic_path
from optbench.errors import OptbenchError
from optbench.results.identity import spec_key
from optbench.results.schema import RunResult
from optbench.results.store import Store

PENDING_DIR = "pending"


@dataclass
class Record:
    """One finished run as the store takes it."""

    spec: dict[str, Any]
    env_id: str
    result: RunResult
    git_sha: str | None
    git_dirty: bool | None
    started_at: str
    finished_at: str
    wall_s: float | None
    log_path: str | None

    def add_to(self, store: Store) -> int:
        fields = {k: v for k, v in self.__dict__.items()
                  if k not in ("spec", "env_id", "result")}
        # the key as this optbench computes it: a record kept by an older one files right
        return store.add_run(self.spec, spec_key(self.spec), self.env_id, self.result, **fields)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["result"] = self.result.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        return cls(**{**data, "result": RunResult.from_dict(data["result"])})


def keep(out_dir: Path, record: Record, environment: dict[str, Any]) -> Path:
    """Write the record (and its environment) under OUT/pending/; returns the file."""
    path = out_dir / PENDING_DIR / f"{spec_key(record.spec)}-{uuid.uuid4().hex[:8]}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"record": record.to_dict(), "environment": environment},
                                  default=str))
    return path


def pending_files(out_dir: Path) -> list[Path]:
    return sorted((out_dir / PENDING_DIR).glob("*.json"))


def import_pending(out_dir: Path, store: Store) -> list[int]:
    """Add every kept record to `store`; returns the new run ids. A file is removed only
    after its run is committed, so an interruption imports nothing twice."""
    ids = []
    for path in pending_files(out_dir):
        try:
            data = json.loads(path.read_text())
            record = Record.from_dict(data["record"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OptbenchError(f"{path} is not a result optbench kept ({exc}); move it "
                                "out of the way and retry") from None
        store.put_environment(record.env_id, data.get("environment") or {})
        ids.append(record.add_to(store))
        path.unlink()
    return ids
