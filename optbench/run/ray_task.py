"""One RunSpec on a Ray node: the body of the Ray executor's task (run/ray_executor.py).

It runs the spec in its own child process exactly as a local sweep does (crash isolation,
the spec's timeout, the child dying with its parent), then returns the RunResult, the
child's log and the node's own environment fingerprint to the driver, which alone writes
the store. Importing this module imports no Ray: the executor wraps `run_on_node` in
`ray.remote` on the driver, and Ray imports it by name on the node.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any

LOG_LIMIT = 2 * 1024 * 1024  # the tail of a child's log that travels back to the driver
# Ray sets OMP_NUM_THREADS for a task from its CPU request (1 when none, as here, since
# exclusivity comes from the machine resource); a local run has no such cap
RAY_THREAD_CAP = "OMP_NUM_THREADS"


def run_on_node(spec: dict[str, Any], driver_version: str, attempt: int) -> dict[str, Any]:
    """Run `spec` in a child process on this node; returns what the driver stores."""
    import optbench
    from optbench.cache import cache_root
    from optbench.env import env_id, fingerprint
    from optbench.results.schema import RunResult
    from optbench.run.child import Child
    from optbench.run.recipe import RunSpec

    placement = node_placement(attempt)
    environment = fingerprint()
    if optbench.__version__ != driver_version:
        result = RunResult("failed", f"node {placement['hostname']} runs optbench "
                                     f"{optbench.__version__}, the driver {driver_version}: "
                                     "install the same optbench on every node")
        result.details["placement"] = placement
        return {"result": result.to_dict(), "wall_s": 0.0, "log": "",
                "env_id": env_id(environment), "environment": environment}
    os.environ.pop(RAY_THREAD_CAP, None)
    run = RunSpec.from_dict(spec)
    with tempfile.TemporaryDirectory(prefix="optbench-ray-") as tmp:
        log_path = Path(tmp) / "run.log"
        cache = cache_root()
        cache.mkdir(parents=True, exist_ok=True)
        child = Child(run, log_path, cache, lambda phase: None, serve=False)
        result = child.wait()
        wall_s = child.wall_s
        log = log_tail(log_path)
    result.details["placement"] = placement
    return {"result": result.to_dict(), "wall_s": wall_s, "log": log,
            "env_id": env_id(environment), "environment": environment}


def node_placement(attempt: int) -> dict[str, Any]:
    """Where this task runs: Ray's node id and address, the host, and the niceness the
    measured child inherits (Ray's workers run at +15 unless the node was started with
    RAY_worker_niceness=0)."""
    import ray

    context = ray.get_runtime_context()
    return {"executor": "ray", "node_id": context.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(), "hostname": socket.gethostname(),
            "attempt": attempt, "niceness": os.getpriority(os.PRIO_PROCESS, 0)}


def log_tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(max(path.stat().st_size - LOG_LIMIT, 0))
            return log.read().decode(errors="replace")
    except OSError:
        return ""
