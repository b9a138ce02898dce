"""The network guard of a run (optbench/run/netguard.py): what it lets through, what it
refuses, and that the worker installs it before any runtime is imported.

An audit hook cannot be removed once added, so every test that installs the guard does it
in a child interpreter. A refused connection is refused before any system call, so these
tests pass the same with or without a network."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import pytest

from optbench.run.netguard import NO_SWITCHES_ENV, destination, is_local


def python(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    # CI=true makes openvino_telemetry send nothing by itself: the control would prove nothing
    clean = {k: v for k, v in os.environ.items() if k not in (NO_SWITCHES_ENV, "CI")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=60, env={**clean, **env})


@pytest.mark.parametrize("host", [None, "", "localhost", "LOCALHOST.", "db.localhost",
                                  "127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "::",
                                  "::ffff:127.0.0.1", b"127.0.0.1"])
def test_loopback_and_this_host_are_local(host: object) -> None:
    assert is_local(host)


@pytest.mark.parametrize("host", ["example.com", "www.google-analytics.com", "8.8.8.8",
                                  "10.0.0.1", "2001:4860:4860::8888", "<broadcast>",
                                  b"huggingface.co", 12345])
def test_other_hosts_and_any_name_to_resolve_are_not(host: object) -> None:
    assert not is_local(host)


def test_destination_names_what_would_leave_the_machine() -> None:
    with socket.socket(socket.AF_INET) as tcp, socket.socket(socket.AF_INET6) as tcp6, \
            socket.socket(socket.AF_UNIX) as unix:
        assert destination("socket.connect", (tcp, ("203.0.113.7", 443))) == "203.0.113.7:443"
        assert destination("socket.connect", (tcp6, ("2001:db8::1", 80, 0, 0))) == (
            "[2001:db8::1]:80")
        assert destination("socket.sendto", (tcp, ("198.51.100.1", 53))) == "198.51.100.1:53"
        assert destination("socket.connect", (tcp, ("127.0.0.1", 8080))) is None
        assert destination("socket.connect", (tcp6, ("::1", 8080, 0, 0))) is None
        assert destination("socket.connect", (unix, "/tmp/vllm.sock")) is None
        assert destination("socket.connect", (unix, b"\0abstract")) is None
    assert destination("socket.getaddrinfo", ("example.com", 443, 0, 0, 0)) == "example.com:443"
    assert destination("socket.getaddrinfo", ("localhost", 80, 0, 0, 0)) is None
    assert destination("socket.getaddrinfo", (None, 0, 0, 0, 0)) is None
    # an address needs no resolver: its connect() is what the guard judges
    assert destination("socket.getaddrinfo", ("203.0.113.7", 443, 0, 0, 0)) is None
    assert destination("socket.gethostbyname", ("example.com",)) == "example.com"
    assert destination("socket.gethostbyaddr", ("8.8.8.8",)) == "8.8.8.8"
    assert destination("socket.getnameinfo", (("8.8.8.8", 53),)) == "8.8.8.8:53"


def test_guard_refuses_the_network_and_keeps_local_sockets() -> None:
    result = python("""
        import json, socket, urllib.request
        from optbench.run import netguard

        netguard.install()
        seen = {}
        with socket.create_server(("127.0.0.1", 0)) as server:  # loopback TCP
            with socket.create_connection(server.getsockname(), timeout=5):
                seen["loopback"] = "ok"
        with socket.create_server(("localhost", 0)) as server:
            with socket.create_connection(("localhost", server.getsockname()[1]), timeout=5):
                seen["localhost"] = "ok"
        a, b = socket.socketpair(socket.AF_UNIX)  # vLLM-style local IPC
        a.sendall(b"x"); seen["unix"] = b.recv(1).decode(); a.close(); b.close()
        def attempt(key, call):
            try:
                call()
                seen[key] = "connected"
            except OSError as exc:
                seen[key] = type(exc).__name__
        attempt("connect", lambda: socket.create_connection(("203.0.113.7", 9), timeout=5))
        attempt("lookup", lambda: socket.getaddrinfo("example.com", 443))
        attempt("byname", lambda: socket.gethostbyname("example.com"))
        attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
            b"x", ("198.51.100.1", 53)))
        attempt("https", lambda: urllib.request.urlopen("https://example.org/", timeout=5))
        print(json.dumps(seen))
    """)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {"loopback": "ok", "localhost": "ok", "unix": "x",
                    "connect": "PermissionError", "lookup": "PermissionError",
                    "byname": "PermissionError", "udp": "PermissionError",
                    "https": "URLError"}  # urllib wraps the PermissionError
    warnings = [line for line in result.stderr.splitlines() if "network: blocked" in line]
    assert warnings == [
        "network: blocked connect to 203.0.113.7:9 from __main__",
        "network: blocked lookup of example.com:443 from __main__",
        "network: blocked lookup of example.com from __main__",
        "network: blocked send to 198.51.100.1:53 from __main__",
        "network: blocked lookup of example.org:443 from __main__",  # urllib's frames skipped
    ]


@pytest.mark.skipif(find_spec("openvino") is None, reason="openvino is not installed")
def test_guard_catches_openvino_telemetry_that_the_switch_prevents(tmp_path: Path) -> None:
    """`import openvino` sends a telemetry event (from a forked process): without the
    switches the guard refuses its lookup; with them openvino_telemetry never loads. HOME
    is private: openvino_telemetry keeps its client id and counters there."""
    script = """
        import logging, sys
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        from optbench.run import netguard

        netguard.install()
        import openvino
        print(sys.modules.get("openvino_telemetry") is not None)
    """
    home = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / ".cache")}
    unguarded = python(script, **home, **{NO_SWITCHES_ENV: "1"})
    assert unguarded.returncode == 0, unguarded.stderr
    assert unguarded.stdout.strip() == "True"
    assert ("WARNING optbench.run.netguard: network: blocked lookup of "
            "www.google-analytics.com:443 from openvino_telemetry") in unguarded.stderr
    switched = python(script, **home)
    assert switched.returncode == 0, switched.stderr
    assert switched.stdout.strip() == "False"
    assert "network: blocked" not in switched.stderr


def test_switches_reach_the_environment_of_what_the_run_starts() -> None:
    result = python("""
        import json, os
        from optbench.run import netguard

        netguard.install()
        print(json.dumps({k: os.environ.get(k) for k in netguard.SWITCHES}))
    """, ORT_DISABLE_TELEMETRY="0")
    assert result.returncode == 0, result.stderr
    switches = json.loads(result.stdout)
    assert switches["ORT_DISABLE_TELEMETRY"] == "1"  # a user's 0 does not turn it back on
    assert set(switches.values()) == {"1"}


def test_worker_imports_no_runtime_before_main_installs_the_guard() -> None:
    """The switches must be set before a runtime initializes: the worker module itself
    may import none of them (backends import theirs inside their methods)."""
    result = python("""
        import json, sys
        import optbench.run.worker
        runtimes = ("onnxruntime", "openvino", "openvino_telemetry", "nncf", "optimum",
                    "transformers", "huggingface_hub", "vllm", "tensorrt")
        print(json.dumps(sorted(m for m in runtimes if m in sys.modules)))
    """)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
