"""The Ray executor's fault paths that a real cluster cannot stage on demand in a test:
the driver losing the cluster mid-sweep, and queued tasks whose machine kind loses its
last node. Ray is stood in for by an object with the calls the executor makes (nodes,
remote().options().remote(), wait, get, cancel, shutdown) and Ray's exception names;
the node death and retry paths run on a real cluster in tests/integration/test_ray_fleet.py.
"""

from __future__ import annotations

import types

import pytest

from optbench.env import env_id, fingerprint
from optbench.results.schema import RunResult
from optbench.results.store import Store
from optbench.run import ray_executor
from optbench.run.parse import parse_recipe
from optbench.run.ray_executor import ClusterLost, RayExecutor
from optbench.run.sweep import Runner

ENV = fingerprint()


class StandInRay:
    """Tasks finish in submission order, one per `wait`; `lose_after` waits the cluster
    is gone (wait raises), `kinds_after` replaces the nodes' kinds after that many waits."""

    def __init__(self, kinds, lose_after=None, kinds_after=None, finish=None):
        self.kinds, self.waits, self.lose_after = list(kinds), 0, lose_after
        self.kinds_after, self.finish = kinds_after, finish
        self.submitted, self.cancelled = [], []
        self.exceptions = types.SimpleNamespace(**{name: type(name, (Exception,), {}) for name in (
            "NodeDiedError", "WorkerCrashedError", "ObjectLostError", "OwnerDiedError",
            "TaskCancelledError", "RayTaskError")})

    def nodes(self):
        return [{"Alive": True, "NodeID": f"n{i}", "NodeManagerAddress": f"127.0.0.{3 + i}",
                 "Resources": {f"machine:{k}": 1.0}} for i, k in enumerate(self.kinds)]

    def remote(self, fn):
        ray = self

        class Remote:
            def options(self, **options):
                assert options["num_cpus"] == 0 and options["max_retries"] == 0
                return self

            def remote(self, spec, version, attempt):
                ref = object()
                ray.submitted.append((ref, spec, attempt))
                return ref

        return Remote()

    def wait(self, refs, num_returns, timeout):
        self.waits += 1
        if self.lose_after is not None and self.waits > self.lose_after:
            raise ConnectionError("GCS at 127.0.0.2:6379 unreachable")
        if self.kinds_after and self.waits >= self.kinds_after[0]:
            self.kinds = self.kinds_after[1]
        done = [r for r, _, _ in self.submitted if r in refs and (self.finish is None or
                                                                 self.finish(r, self))]
        return done[:1], [r for r in refs if r not in done[:1]]

    def get(self, ref):
        result = RunResult("ok", "")
        return {"result": result.to_dict(), "wall_s": 0.1, "log": "log\n",
                "env_id": env_id(ENV), "environment": ENV}

    def cancel(self, ref, force):
        self.cancelled.append(ref)

    def shutdown(self):
        pass


def executor(ray):
    ex = RayExecutor.__new__(RayExecutor)  # __init__ would connect to a real cluster
    ex.ray, ex.address, ex.machines, ex.prices, ex._pending = ray, "127.0.0.2:6379", (), {}, {}
    return ex


def recipe(machines):
    return parse_recipe({"name": "faults", "model": "fake-mlp", "backends": ["fake", {
        "fake": {"latency_s": 0.001}}], "executor": "ray", "machines": machines})


def stored(out):
    store = Store.open(out, readonly=True)
    try:
        return [(r.spec["machine"], r.result.status, r.result.reason) for r in store.iter_runs()]
    finally:
        store.close()


def test_losing_the_cluster_keeps_what_finished_and_says_resume(tmp_path):
    ray = StandInRay(["a"], lose_after=1)
    with pytest.raises(ClusterLost) as lost:
        Runner(tmp_path, executor=executor(ray)).run(recipe(["a"]))
    message = str(lost.value)
    assert "lost the Ray cluster at 127.0.0.2:6379 (GCS at 127.0.0.2:6379 unreachable)" in message
    assert "the 1 configuration(s) still running or queued were not measured" in message
    assert "--resume runs the rest" in message
    assert stored(tmp_path) == [("a", "ok", "")]  # the one that finished is in the store


def test_queued_tasks_of_a_kind_that_lost_its_last_node_are_cancelled_as_failed(
        tmp_path, monkeypatch):
    monkeypatch.setattr(ray_executor, "LIVENESS_S", 0.0)
    # kind b's only node goes after the first wait; its tasks never finish on their own
    ray = StandInRay(["a", "b"], kinds_after=(2, ["a"]),
                     finish=lambda ref, r: next(s for x, s, _ in r.submitted
                                                if x is ref)["machine"] == "a")
    Runner(tmp_path, executor=executor(ray)).run(recipe(["a", "b"]))
    runs = stored(tmp_path)
    assert sorted(s for m, s, _ in runs if m == "a") == ["ok", "ok"]
    lost = [(s, why) for m, s, why in runs if m == "b"]
    assert lost == [("failed", "no live b node is left in the Ray cluster to run it")] * 2
    assert len(ray.cancelled) == 2
