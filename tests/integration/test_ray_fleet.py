"""The Ray executor on a real Ray cluster: a head and worker nodes on this machine, each on
its own loopback address (Ray rewrites 127.0.0.1 to the outward address; 127.0.0.2 and up
stay on loopback), offering machine kinds `a`, `b` and `c` (two `c` nodes, for retries).

One cluster serves the module (its start is measured and printed); the test stops it and
then kills by PID whatever still runs with this session's RAY_TMPDIR in its environment
(Ray's agents can outlive their raylet).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict

import psutil
import pytest

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

from optbench.errors import UsageError  # noqa: E402
from optbench.results.store import Store  # noqa: E402
from optbench.run.parse import parse_recipe  # noqa: E402
from optbench.run.ray_executor import RayExecutor, live_nodes  # noqa: E402
from optbench.run.sweep import Runner  # noqa: E402

NODES = {"127.0.0.3": "a", "127.0.0.4": "b", "127.0.0.5": "c", "127.0.0.6": "c"}


@pytest.fixture(scope="module")
def cluster():
    tmp = tempfile.mkdtemp(prefix="obr-", dir="/tmp")  # short: Ray's AF_UNIX socket paths
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(RAY_TMPDIR=tmp, RAY_USAGE_STATS_ENABLED="0")
    t0 = time.perf_counter()
    c = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "node_ip_address": "127.0.0.2", "num_cpus": 0, "include_dashboard": False})
    nodes = {ip: c.add_node(node_ip_address=ip, num_cpus=1, resources={f"machine:{kind}": 1})
             for ip, kind in NODES.items()}
    c.wait_for_nodes()
    print(f"\nRay cluster (head + {len(nodes)} nodes) up in {time.perf_counter() - t0:.1f} s")
    c.nodes_by_ip = nodes
    c.tmp = tmp
    try:
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        kill_session_processes(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def kill_session_processes(tmp: str) -> None:
    mark = f"RAY_TMPDIR={tmp}"
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and any(e == mark for e in (
                    f"{k}={v}" for k, v in proc.environ().items())):
                proc.kill()
        except (psutil.Error, OSError):
            continue


def recipe(backends, machines=None, eval_samples=32, timeout_s=120):
    data = {"name": "fleet", "model": "fake-mlp", "backends": backends,
            "workload": {"eval_samples": eval_samples},
            "measure": {"preset": "smoke", "timeout_s": timeout_s}}
    if machines:
        data.update(executor={"kind": "ray"}, machines=machines)
    return parse_recipe(data)


def runs(out):
    store = Store.open(out, readonly=True)
    try:
        return list(store.iter_runs())
    finally:
        store.close()


def test_every_ray_address_is_on_loopback(cluster):
    loopback = ipaddress.ip_network("127.0.0.0/8")
    host = cluster.address.rsplit(":", 1)[0]
    assert ipaddress.ip_address(host) in loopback and host != "127.0.0.1"
    executor = RayExecutor(cluster.address)
    try:
        nodes = live_nodes(ray)
        assert {ipaddress.ip_address(n.address) in loopback for n in nodes} == {True}
        assert sorted(n.address for n in nodes if n.kinds) == sorted(NODES)
        assert "a (1 node), b (1 node), c (2 nodes)" in executor.describe()
    finally:
        executor.close()


def test_a_sweep_across_two_kinds_has_local_keys_once_per_kind(cluster, tmp_path):
    r = recipe(["fake", {"fake": {"latency_s": 0.002, "wait": "sleep"}}],
               machines=[{"name": "a", "price_per_hour": 2.0}, "b"])
    local_keys = sorted(s.key() for s in Runner(tmp_path / "local").plan(r))
    Runner(tmp_path, executor=RayExecutor(cluster.address)).run(r)
    stored = runs(tmp_path)
    assert [r.result.status for r in stored] == ["ok"] * 4
    by_kind = defaultdict(list)
    for run in stored:
        by_kind[run.spec["machine"]].append(run.spec_key)
        placement = run.result.details["placement"]
        assert placement["executor"] == "ray" and placement["attempt"] == 0
        assert NODES[placement["node_ip"]] == run.spec["machine"]
        assert run.env_id and run.log_path and os.path.isfile(run.log_path)
    assert {k: sorted(v) for k, v in by_kind.items()} == {"a": local_keys, "b": local_keys}
    assert_exclusive(stored)

    from optbench.api import rows as summary_rows
    rows = summary_rows(tmp_path)
    assert sorted(r["machine"] for r in rows) == ["a", "a", "b", "b"]
    assert {r["node"] for r in rows} == {"127.0.0.3", "127.0.0.4"}

    # the report puts the two kinds side by side, and its recommendation names the kind
    from optbench.api import recommend
    from optbench.report.render import render
    from optbench.report.text import run_label

    (rec,) = recommend(tmp_path)
    assert rec.best is not None and rec.best["env_label"] in ("a", "b")
    assert run_label(rec.best).endswith(f"(cpu on {rec.best['env_label']})")
    text = render([tmp_path], html=False).markdown.read_text()
    assert "| machine |" in text and run_label(rec.best) in text

    # the fleet report: a's price from the recipe, b's from the report; cost per million
    # is the electricity plus the machine's hour over the throughput
    priced = {r["machine"] + r["backend"] + str(r["latency_p50_s"] > 1e-3): r
              for r in summary_rows(tmp_path, price_per_kwh=0.3, price_per_hour={"b": 0.5})}
    for row in priced.values():
        assert row["price_per_hour"] == {"a": 2.0, "b": 0.5}[row["machine"]]
        assert row["cost_machine_per_million"] == pytest.approx(
            row["price_per_hour"] * 1e6 / 3600 / row["throughput_per_s"])
        assert row["cost_per_million"] == pytest.approx(
            row["cost_machine_per_million"] + row["energy_per_sample_j"] * 1e6 / 3.6e6 * 0.3)
    report = render([tmp_path], price_per_kwh=0.3, machine_prices={"b": 0.5})
    text = report.markdown.read_text()
    assert "### fake-mlp: machines side by side" in text
    assert "| machine | price/h | chosen on it |" in text
    assert "| a | 2 |" in text and "| b | 0.5 |" in text
    assert "cheapest per million images: " in text and "least energy per image: " in text
    assert "other processes used at most" in text
    assert any(p.name.endswith("-fleet.png") for p in report.figures)
    assert '"bars":' in report.html.read_text()

    from typer.testing import CliRunner

    from optbench.cli import app

    said = CliRunner().invoke(app, ["recommend", "--out", str(tmp_path), "--price-per-kwh",
                                    "0.3", "--price-per-hour", "b=0.5"])
    assert said.exit_code == 0, said.output
    assert "machines side by side:" in said.output
    assert "cheapest per million images: " in said.output


def test_serving_on_two_kinds_is_compared_at_the_asked_rate(cluster, tmp_path):
    r = parse_recipe({
        "name": "fleet-serving", "model": "fake-mlp",
        "backends": [{"fake": {"latency_s": 0.005, "wait": "sleep"}}],
        "workload": {"eval_samples": 32}, "measure": {"preset": "smoke", "timeout_s": 120},
        "scenario": {"kind": "server", "rates_per_s": [20], "duration_s": 1,
                     "batching": {"max_batch": 1}},
        "executor": {"kind": "ray"}, "machines": [{"name": "a", "price_per_hour": 0.72}, "b"]})
    Runner(tmp_path, executor=RayExecutor(cluster.address)).run(r)
    assert [x.result.status for x in runs(tmp_path)] == ["ok", "ok"]

    from optbench.report.recommend import Constraints
    from optbench.report.render import render

    report = render([tmp_path], price_per_kwh=0.3, machine_prices={"b": 3.6}, html=False,
                    constraints=Constraints(rate_per_s=20))
    text = report.markdown.read_text()
    assert "| machine | price/h | chosen at 20 req/s |" in text
    # the machine's hour over 20 requests a second: 0.72 -> 10, 3.6 -> 50 per million
    assert "+ 10 machine)" in text and "+ 50 machine)" in text
    assert "least energy per request at 20 req/s: " in text
    assert "cheapest per million requests at 20 req/s: a " in text


def assert_exclusive(stored):
    """No two runs' metered windows overlap on one node (CLOCK_MONOTONIC is system-wide)."""
    windows = defaultdict(list)
    for run in stored:
        node = run.result.details["placement"]["node_id"]
        for trial in run.result.trials:
            start = trial.telemetry["t_start_monotonic_ns"] / 1e9
            windows[node].append((start, start + trial.window_s, run.id))
    for spans in windows.values():
        spans.sort()
        for (_, end, run_a), (start, _, run_b) in zip(spans, spans[1:]):
            assert run_a == run_b or start >= end, "two runs metered one node at once"


def test_a_kind_no_node_offers_is_bad_input_and_nothing_is_written(cluster, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="no live node .* machine kind 'h100'.*kinds offered: "
                                         "a, b, c"):
        Runner(out, executor=RayExecutor(cluster.address)).run(
            recipe(["fake"], machines=["a", "h100"]))
    assert not out.exists()


def test_a_node_killed_mid_run_is_failed_then_retried_and_resume_runs_only_the_rest(
        cluster, tmp_path):
    slow = {"fake": {"latency_s": 0.05, "wait": "sleep"}}  # ~3 s of evaluation
    r = recipe([slow, "fake"], machines=["c"], eval_samples=64)
    errors = []

    def sweep():
        try:
            Runner(tmp_path, executor=RayExecutor(cluster.address)).run(r)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=sweep)
    thread.start()
    victim = wait_for_child_of(slow_label="latency_s", timeout_s=60)
    cluster.remove_node(cluster.nodes_by_ip.pop(victim), allow_graceful=False)
    thread.join(180)
    assert not thread.is_alive() and not errors, errors
    stored = runs(tmp_path)
    slow_runs = [x for x in stored if "latency_s" in str(x.spec["backend"]["options"])]
    assert [x.result.status for x in slow_runs] == ["failed", "ok"]
    assert "node running it died" in slow_runs[0].result.reason
    assert "retried once on another c node" in slow_runs[0].result.reason
    retried = slow_runs[1].result.details["placement"]
    assert retried["attempt"] == 1 and retried["node_ip"] != victim

    # resume: everything is ok on kind c, so nothing runs again
    before = len(stored)
    Runner(tmp_path, executor=RayExecutor(cluster.address)).run(r, resume=True)
    assert len(runs(tmp_path)) == before

    # the last c node goes too: a kind with no live node left is bad input for a new sweep
    for ip in [ip for ip, kind in NODES.items() if kind == "c" and ip in cluster.nodes_by_ip]:
        cluster.remove_node(cluster.nodes_by_ip.pop(ip), allow_graceful=False)
    executor = RayExecutor(cluster.address)
    try:  # a hard-killed node is declared dead after missed health checks
        deadline = time.monotonic() + 30
        while any("c" in n.kinds for n in executor.nodes()) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        executor.close()
    with pytest.raises(UsageError, match="machine kind 'c'"):
        Runner(tmp_path, executor=RayExecutor(cluster.address)).run(r, resume=True)
    assert len(runs(tmp_path)) == before


def wait_for_child_of(slow_label: str, timeout_s: float) -> str:
    """The node IP of the Ray worker whose measured child runs the slow spec: the child is
    `python -m optbench.run.worker SPEC`, below its node's raylet (--node_ip_address)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            if "optbench.run.worker" not in cmd:
                continue
            try:
                spec = open(cmd[cmd.index("optbench.run.worker") + 1]).read()
                if slow_label not in spec:
                    continue
                for parent in proc.parents():
                    ips = [a.split("=", 1)[1] for a in parent.cmdline()
                           if a.startswith(("--node-ip-address=", "--node_ip_address="))]
                    if ips and ips[0] in NODES:
                        return ips[0]
            except (OSError, psutil.Error, IndexError):
                continue
        time.sleep(0.1)
    raise AssertionError("the slow configuration's child never started")


def test_a_node_with_another_optbench_version_fails_the_run_with_the_reason(cluster):
    from optbench.run.ray_task import run_on_node

    r = recipe(["fake"], machines=["a"])
    spec = RayExecutor(cluster.address).plan(r)[0]
    try:
        task = ray.remote(run_on_node).options(resources={"machine:a": 1}, num_cpus=0)
        payload = ray.get(task.remote(spec.to_dict(), "0.0.0-other", 0), timeout=60)
    finally:
        ray.shutdown()
    assert payload["result"]["status"] == "failed"
    assert "the driver 0.0.0-other" in payload["result"]["reason"]
    assert payload["env_id"] and payload["result"]["details"]["placement"]["node_ip"] == \
        "127.0.0.3"
