"""One sweep per output directory; log names that never collide; kept results round-trip."""

import json

import pytest

from optbench.results.schema import RunResult
from optbench.run.outdir import OutputBusy, OutputLock, log_path
from optbench.run.pending import Record, keep, pending_files


def test_a_second_lock_on_the_same_directory_is_refused_with_the_holder(tmp_path):
    with OutputLock(tmp_path):
        with pytest.raises(OutputBusy, match=r"another optbench sweep \(pid \d+\)"):
            with OutputLock(tmp_path):
                pass
    with OutputLock(tmp_path):  # released when the holder is done
        pass


def test_log_names_in_the_same_second_differ(tmp_path):
    names = {log_path(tmp_path, "abc", "fake-fp32") for _ in range(100)}
    assert len(names) == 100


def test_a_kept_record_holds_everything_the_store_needs(tmp_path):
    record = Record({"model": {"ref": "m"}}, "env1", RunResult("ok", None), "sha",
                    False, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00", 1.0,
                    "log")
    path = keep(tmp_path, record, {"hostname": "h"})
    assert pending_files(tmp_path) == [path]
    data = json.loads(path.read_text())
    assert Record.from_dict(data["record"]) == record
    assert data["environment"] == {"hostname": "h"}
    assert not list(path.parent.glob(".*"))  # written atomically: no temporary left
