"""Ray's own CPU on the meters: the contention meter's foreign CPU (cores busy outside the
measured process tree) in the energy trials of one configuration, run locally and then on a
Ray cluster of a head and one measuring node started on this machine (loopback addresses).

    python benchmarks/ray_overhead.py [--preset quick] [--repeats 3]

On one box both the head's and the node's daemons count as foreign, so the Ray figure is an
upper bound for a measuring node whose head runs elsewhere. Table in docs/fleet.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def foreign(out: Path) -> tuple[list[float], list[float]]:
    from optbench.results.store import Store

    store = Store.open(out, readonly=True)
    cores, energy = [], []
    for run in store.iter_runs():
        for t in run.result.trials:
            if t.phase == "load" and "foreign_cpu_cores" in t.telemetry:
                cores.append(t.telemetry["foreign_cpu_cores"])
                total = t.total_energy_j()
                if total is not None and t.samples:
                    energy.append(total / t.samples)
    store.close()
    return cores, energy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="obb-", dir="/tmp")
    os.environ.update(RAY_TMPDIR=tmp, RAY_USAGE_STATS_ENABLED="0")
    from optbench.run.parse import parse_recipe
    from optbench.run.sweep import Runner

    data = {"name": "ray-overhead", "model": "fake-mlp",
            "backends": [{"fake": {"latency_s": 0.001}}],
            "measure": {"preset": args.preset}}
    rows = {}
    for i in range(args.repeats):
        Runner(Path(tmp) / "local", cache=Path(tmp) / "cache").run(
            parse_recipe({**data, "name": f"l{i}"}))
    rows["local"] = foreign(Path(tmp) / "local")

    from ray import cluster_utils

    from optbench.run.ray_executor import RayExecutor

    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "node_ip_address": "127.0.0.2", "num_cpus": 0, "include_dashboard": False})
    cluster.add_node(node_ip_address="127.0.0.3", num_cpus=1, resources={"machine:box": 1})
    cluster.wait_for_nodes()
    time.sleep(5)  # past the start-up burst
    try:
        for i in range(args.repeats):
            Runner(Path(tmp) / "ray", executor=RayExecutor(cluster.address)).run(
                parse_recipe({**data, "name": f"r{i}", "executor": "ray",
                              "machines": ["box"]}))
        rows["ray (head + node here)"] = foreign(Path(tmp) / "ray")
    finally:
        cluster.shutdown()
    print("| where | load trials | foreign CPU, cores (median) | max | energy/sample mJ "
          "(median) |\n|---|---|---|---|---|")
    for name, (cores, energy) in rows.items():
        print(f"| {name} | {len(cores)} | {statistics.median(cores):.3f} | {max(cores):.3f} "
              f"| {statistics.median(energy) * 1e3:.4f} |")


if __name__ == "__main__":
    main()
