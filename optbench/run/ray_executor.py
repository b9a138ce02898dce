"""The Ray executor: each RunSpec a Ray task on a node of the requested machine kind.

A node offers machine kind K through the custom resource `machine:K` (quantity 1) that
its operator gives at `ray start --resources '{"machine:K": 1}'`. Every task asks for one
unit of it, so a node runs one measured RunSpec at a time: energy counters are per
package and per board, and two runs on one node would share them. Inside the task the
spec runs in its own child process exactly as locally (run/ray_task.py).

The driver alone writes the store: results come back as task return values and go into
its SQLite store one by one, as they finish, so nothing finished is lost if the driver or
the cluster goes away. A node that dies mid-run is retried once on another node of the
same kind when one is alive; otherwise, and after the retry, it is a `failed` record with
Ray's reason. A kind no live node offers gives `skipped` records rather than a sweep that
waits forever (Ray queues an infeasible task without an error).

Ray is imported only here and only when this executor is built: `pip install
'optbench[ray]'`. docs/fleet.md says how to start a cluster.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optbench
from optbench.errors import OptbenchError, UsageError
from optbench.results.schema import RunResult
from optbench.run.outdir import log_path
from optbench.run.ray_task import run_on_node
from optbench.run.recipe import Recipe, RunSpec
from optbench.run.sweep import Finished, RunnerEvents, resolve_device

MACHINE = "machine:"
RAY_MISSING = ("the ray executor needs Ray: pip install 'optbench[ray]' (Ray from PyPI) on "
               "the driver and on every node")
POLL_S = 1.0
CONNECT_S = 5.0  # for the head's GCS port to take a TCP connection
LIVENESS_S = 5.0  # how often queued tasks are checked against the kinds still alive


class ClusterLost(OptbenchError):
    """The driver lost its Ray cluster mid-sweep; what had finished is in the store."""


@dataclass(frozen=True)
class Node:
    node_id: str
    address: str
    kinds: tuple[str, ...]
    gpus: float


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


def live_nodes(ray: Any) -> list[Node]:
    """The cluster's live nodes and the machine kinds each offers."""
    nodes = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        resources = n.get("Resources") or {}
        kinds = tuple(sorted(k[len(MACHINE):] for k in resources if k.startswith(MACHINE)))
        nodes.append(Node(n["NodeID"], n.get("NodeManagerAddress", "?"), kinds,
                          float(resources.get("GPU", 0))))
    return nodes


def by_kind(nodes: list[Node]) -> dict[str, list[Node]]:
    kinds: dict[str, list[Node]] = {}
    for node in nodes:
        for kind in node.kinds:
            kinds.setdefault(kind, []).append(node)
    return kinds


class RayExecutor:
    """Runs a sweep's RunSpecs as tasks on the Ray cluster at `address`."""

    def __init__(self, address: str | None, machines: tuple[str, ...] = (),
                 temp_dir: str | None = None) -> None:
        self.ray = require_ray()
        self.address = address or "auto"
        self.machines = machines
        self.prices: dict[str, float] = {}  # kind -> price per hour, from the recipe
        self._pending: dict[Any, tuple[int, RunSpec, int]] = {}
        probe(self.address)  # ray.init retries an unreachable address for minutes
        try:
            self.ray.init(address=self.address, include_dashboard=False,
                          log_to_driver=False, logging_level=logging.WARNING,
                          ignore_reinit_error=True,
                          **({"_temp_dir": temp_dir} if temp_dir else {}))
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"cannot reach the Ray cluster at {self.address}: "
                             f"{one_line(exc)} (start it with `ray start --head`; "
                             "docs/fleet.md)") from None

    def nodes(self) -> list[Node]:
        return live_nodes(self.ray)

    def describe(self) -> str:
        """One line: the cluster and the machine kinds its live nodes offer."""
        nodes = self.nodes()
        kinds = by_kind(nodes)
        offered = ", ".join(f"{k} ({len(v)} node{'s' if len(v) > 1 else ''})"
                            for k, v in sorted(kinds.items())) or "no machine kind"
        return f"Ray cluster at {self.address}: {len(nodes)} live node(s); {offered}"

    def plan(self, recipe: Recipe) -> list[RunSpec]:
        """Every configuration on every machine kind asked for (the recipe's, else the
        executor's, else every kind the cluster offers), its device resolved for the kind:
        CUDA where the kind's nodes have GPUs and the backend runs there. A kind that no
        live node offers is bad input (nothing is written): Ray would queue it forever."""
        kinds = by_kind(self.nodes())
        machines = recipe.machines or self.machines or tuple(sorted(kinds))
        self.prices = dict(recipe.machine_prices)
        if not machines:
            raise UsageError(f"no node of the Ray cluster at {self.address} offers a machine "
                             "kind: start each measuring node with ray start --resources "
                             "'{\"machine:KIND\": 1}' (docs/fleet.md)")
        missing = [kind for kind in machines if kind not in kinds]
        if missing:
            raise UsageError(no_kind(missing[0], kinds))
        specs = []
        for kind in machines:
            has_gpu = any(n.gpus > 0 for n in kinds.get(kind, []))
            for spec in recipe.expand("cpu"):
                device = resolve_device(recipe.device, spec.backend.name, has_gpu)
                specs.append(replace(spec, device=device, machine=kind))
        return specs

    def execute(self, todo: list[tuple[int, RunSpec]], total: int, events: RunnerEvents,
                logs: Path, keep: Callable[[Finished], None]) -> None:
        remote = self.ray.remote(run_on_node)
        kinds = by_kind(self.nodes())
        for index, spec in todo:
            events.started(index, total, spec)
            if spec.machine in kinds:
                self._submit(remote, index, spec, 0, kinds)
            else:
                keep(Finished(spec, RunResult("skipped", no_kind(spec.machine, kinds)),
                              0.0, None))
        checked = time.monotonic()
        while self._pending:
            try:
                ready, _ = self.ray.wait(list(self._pending), num_returns=1, timeout=POLL_S)
            except Exception as exc:  # noqa: BLE001 - whatever Ray raises, the cluster is gone
                raise self._lost(exc) from None
            for ref in ready:
                index, spec, attempt = self._pending.pop(ref)
                finished = self._collect(ref, spec, attempt, logs)
                if isinstance(finished, Finished):
                    keep(finished)
                    continue
                live = by_kind(self.nodes())
                if attempt == 0 and live.get(spec.machine):
                    # the lost attempt is a record of its own; the retry's result follows
                    keep(Finished(spec, RunResult("failed", f"{finished}; retried once on "
                                                  f"another {spec.machine} node"), 0.0, None))
                    total += 1  # the progress counts the retry as a run of its own
                    events.started(index, total, spec)
                    self._submit(remote, index, spec, 1, live)
                else:
                    reason = (f"{finished}; no other live {spec.machine} node to retry on"
                              if attempt == 0 else f"{finished}, after one retry")
                    keep(Finished(spec, RunResult("failed", reason), 0.0, None))
            if time.monotonic() - checked > LIVENESS_S:
                checked = time.monotonic()
                self._drop_orphans(keep)

    def _submit(self, remote: Any, index: int, spec: RunSpec, attempt: int,
                kinds: dict[str, list[Node]]) -> None:
        assert spec.machine is not None
        # all of the node's GPUs (the least any node of the kind has), so the child sees them
        gpus = min(n.gpus for n in kinds[spec.machine]) if spec.device == "cuda" else 0
        ref = remote.options(resources={MACHINE + spec.machine: 1}, num_cpus=0,
                             num_gpus=gpus, max_retries=0, retry_exceptions=False,
                             name=f"optbench {spec.label()}").remote(
            spec.to_dict(), optbench.__version__, attempt)
        self._pending[ref] = (index, spec, attempt)

    def _collect(self, ref: Any, spec: RunSpec, attempt: int,
                 logs: Path) -> Finished | str:
        """The task's Finished record, or the reason a node or worker died (to retry)."""
        exceptions = self.ray.exceptions
        try:
            payload = self.ray.get(ref)
        except (exceptions.NodeDiedError, exceptions.WorkerCrashedError,
                exceptions.ObjectLostError, exceptions.OwnerDiedError) as exc:
            return f"the {spec.machine} node running it died ({type(exc).__name__}: " \
                   f"{one_line(exc)})"
        except exceptions.TaskCancelledError:
            return Finished(spec, RunResult("failed", "cancelled on the Ray cluster"), 0.0, None)
        except exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return Finished(spec, RunResult("failed", f"the Ray task failed on a "
                                            f"{spec.machine} node: {type(cause).__name__}: "
                                            f"{one_line(cause)}"), 0.0, None)
        result = RunResult.from_dict(payload["result"])
        placed = result.details.setdefault("placement", {})
        placed["attempt"] = attempt
        if spec.machine in self.prices:  # the recipe's price: the fleet report's cost
            placed["price_per_hour"] = self.prices[spec.machine]
        path = None
        if payload.get("log"):
            logs.mkdir(parents=True, exist_ok=True)
            path = log_path(logs, spec.key(), f"{spec.backend.name}-{spec.variant.name}-"
                                              f"{spec.machine}")
            path.write_text(payload["log"])
        return Finished(spec, result, float(payload.get("wall_s") or 0.0), path,
                        payload["env_id"], payload["environment"])

    def _drop_orphans(self, keep: Callable[[Finished], None]) -> None:
        """Queued tasks whose kind has no live node left would wait forever: cancel them."""
        try:
            live = by_kind(self.nodes())
        except Exception as exc:  # noqa: BLE001
            raise self._lost(exc) from None
        for ref, (_, spec, _) in list(self._pending.items()):
            if live.get(spec.machine):
                continue
            self.ray.cancel(ref, force=True)
            del self._pending[ref]
            keep(Finished(spec, RunResult("failed", f"no live {spec.machine} node is left in "
                                          "the Ray cluster to run it"), 0.0, None))

    def _lost(self, exc: BaseException) -> ClusterLost:
        labels = [spec.label() for _, spec, _ in self._pending.values()]
        self._pending.clear()
        return ClusterLost(f"lost the Ray cluster at {self.address} ({one_line(exc)}): the "
                           f"{len(labels)} configuration(s) still running or queued were not "
                           "measured; every finished one is in the store, and --resume runs "
                           "the rest once the cluster is back")

    def stop(self) -> list[str]:
        """Cancel what is queued or running (interrupted sweep); returns their labels."""
        labels = []
        for ref, (_, spec, _) in list(self._pending.items()):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - stopping: the cluster may be gone already
                pass
            labels.append(spec.label())
        self._pending.clear()
        return labels

    def close(self) -> None:
        """Disconnect the driver (the cluster stays up)."""
        self.stop()
        self.ray.shutdown()


def probe(address: str, timeout_s: float = CONNECT_S) -> None:
    """A HOST:PORT that takes no TCP connection is a one-line error now, not minutes of
    Ray's retries. `auto` (Ray finds the cluster started on this machine, or RAY_ADDRESS)
    and ray:// client addresses are left to Ray."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep:
        return
    if not port.isdigit():
        raise UsageError(f"the Ray address {address!r} is not HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address}: "
                         f"{exc.strerror or type(exc).__name__} (start it with `ray start "
                         "--head`, or give its address as HOST:PORT; docs/fleet.md)") from None


def no_kind(kind: str | None, kinds: dict[str, list[Node]]) -> str:
    offered = ", ".join(sorted(kinds)) or "none"
    return (f"no live node of the Ray cluster offers machine kind {kind!r} (kinds offered: "
            f"{offered}); start one with ray start --resources '{{\"machine:{kind}\": 1}}'")


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__
