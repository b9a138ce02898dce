"""A configuration's identity: the key `--resume` and the report group runs by.

Pure and below the run layer, so the store can recompute keys of old stores from their
stored spec JSON (a migration) with the same function `RunSpec.key()` uses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Spec fields that do not change what is measured: two specs differing only in them are
# one configuration. The recipe name is a label; the timeout only decides how long the
# parent waits (a run that hit it is `failed` and is measured again on resume anyway).
# `front` only says which models a report puts on one front.
# Everything else stays in: meters, the CPU TDP and the estimate switch change the energy
# figures, the workload and scenario fields (seeds, durations, search steps) the samples.
NOT_IDENTITY: tuple[tuple[str, ...], ...] = (("recipe",), ("measure", "timeout_s"), ("front",))


def spec_key(spec: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit hash of a spec dict (`RunSpec.to_dict()`, or a store's spec
    JSON) without the fields of NOT_IDENTITY."""
    data = json.loads(json.dumps(spec, default=str))  # a deep copy, in JSON's types
    for path in NOT_IDENTITY:
        parent = data
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    if data.get("scenario") is None:
        data.pop("scenario", None)  # keys of closed-loop specs predate scenarios
    # where it runs is not what it is: a cluster's runs have a local run's keys, once per
    # machine kind (`where` tells them apart)
    data.pop("machine", None)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def where(spec: Mapping[str, Any], env_id: str) -> str:
    """Where a run counts as measured: its machine kind when an executor placed it (any
    node of the kind), else the environment it ran in."""
    machine = spec.get("machine")
    return f"{MACHINE_PREFIX}{machine}" if machine else env_id


MACHINE_PREFIX = "machine:"
# the same, in SQL over the runs table (json_extract of a NULL machine is NULL)
WHERE_SQL = f"COALESCE('{MACHINE_PREFIX}' || json_extract(spec, '$.machine'), env_id)"
