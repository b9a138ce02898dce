"""No network at run time: the runtimes' telemetry switched off, and any other connection
off this machine refused.

`install()` is the first call in the worker's `main()`, before any runtime is imported (the
backends import theirs inside their methods). It

1. sets the runtimes' opt-out switches (`SWITCHES`, and `openvino_telemetry` kept from
   importing; each comment says what the switch stops and where it is documented), then
2. adds an audit hook (`sys.addaudithook`) that refuses every socket connect, datagram send
   and name lookup whose destination is off this machine: one WARNING on
   `optbench.run.netguard` (`network: blocked connect to HOST:PORT from MODULE`), then
   PermissionError, so nothing is sent. Loopback (127.0.0.0/8, ::1, "localhost"), the
   unspecified address (0.0.0.0, ::, meaning this host) and non-IP sockets (AF_UNIX) stay
   open: vLLM and others talk to their own processes that way.

The hook sees what goes through Python's `socket` module, in this process and in processes
it forks. It cannot see sockets opened from C or C++ (ONNX Runtime's telemetry uploader uses
a bundled libcurl), nor processes started with exec (spawned pools, subprocesses): those
are stopped by the switches alone, which the environment passes on.

`OPTBENCH_NETGUARD_NO_SWITCHES=1` skips step 1 and keeps the guard: the tests use it to
show that the guard catches what the switches prevent. It is not meant for users.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import sys
from typing import Any

log = logging.getLogger(__name__)

NO_SWITCHES_ENV = "OPTBENCH_NETGUARD_NO_SWITCHES"

SWITCHES: dict[str, str] = {
    # ONNX Runtime >= 1.29 (official non-Windows wheels) starts a 1DS telemetry uploader
    # in C++ that resolves mobile.events.data.microsoft.com seconds into a session (9 s on
    # the 2-core VM), that is, during the measurement. Read once, when ORT initializes.
    # ORT docs/Privacy.md, "Disabling Telemetry". (`onnxruntime.disable_telemetry_events()`
    # does not stop the uploader: it only suppresses "non-essential" events.)
    "ORT_DISABLE_TELEMETRY": "1",
    # Hugging Face hub: no usage telemetry, and no hub requests at all: a hub id is loaded
    # from the local hub cache (the parent fetches it there when it reads a recipe without
    # a workload kind). huggingface_hub docs, "Environment variables".
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    # optbench's own checkpoint downloads (models/hub.py): the parent fetches published
    # weights before the sweep; a worker only reads the cache.
    "OPTBENCH_OFFLINE": "1",
    # vLLM posts usage statistics from a thread. vLLM docs, "Usage Stats Collection"; both
    # variables are its documented opt-outs (DO_NOT_TRACK is also read by huggingface_hub).
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}

EVENTS = {"socket.connect": "connect to", "socket.sendto": "send to",
          "socket.getaddrinfo": "lookup of", "socket.gethostbyname": "lookup of",
          "socket.gethostbyname_ex": "lookup of", "socket.gethostbyaddr": "lookup of",
          "socket.getnameinfo": "lookup of"}
# Packages skipped when naming who opened the connection: the plumbing under the caller.
PLUMBING = {"socket", "ssl", "http", "urllib", "urllib3", "requests", "httpx", "httpcore",
            "h11", "selectors", "asyncio", "concurrent", "threading", "multiprocessing"}

_installed = False


def install() -> None:
    """The switches (unless NO_SWITCHES_ENV is "1"), then the guard, once per process."""
    global _installed
    if os.environ.get(NO_SWITCHES_ENV) != "1":
        apply_switches()
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


def apply_switches() -> None:
    """The runtimes' telemetry opt-outs, for this process and the processes it starts."""
    os.environ.update(SWITCHES)
    # OpenVINO and NNCF report to Google Analytics through openvino_telemetry: `import
    # openvino` sends an event, convert_model a dozen, nncf.quantize a few, each from a
    # forked process waited on for up to 3 s. Its documented opt-out, `opt_in_out
    # --opt_out`, writes a per-user consent file (~/intel/openvino_telemetry) and itself
    # sends a "declined" event. Both callers fall back to a no-op when the package cannot
    # be imported (openvino.tools.ovc.telemetry_stub; nncf: "No telemetry will be sent"):
    # a None entry in sys.modules makes the import fail (Python's documented behaviour).
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]


def _ip(host: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        return ipaddress.ip_address(str(host).strip().partition("%")[0])  # no IPv6 zone
    except ValueError:
        return None


def is_local(host: Any) -> bool:
    """Whether a host names this machine without asking a resolver: a loopback or
    unspecified address, or "localhost"."""
    if host is None:
        return True  # getaddrinfo(None, port): this host's own addresses
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip().rstrip(".").lower()
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True  # "" is INADDR_ANY to connect()
    ip = _ip(name)
    if ip is None:
        return False  # a name to resolve: the resolver may ask the network
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or ip.is_unspecified or bool(mapped and mapped.is_loopback)


def destination(event: str, args: tuple[Any, ...]) -> str | None:
    """The off-machine destination an audited socket event would reach, as HOST:PORT (or
    HOST for a lookup without a port); None when the event stays on this machine."""
    if event in ("socket.connect", "socket.sendto"):
        sock, address = args[0], args[-1]
        if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
            return None  # AF_UNIX and other non-IP sockets
        if not isinstance(address, tuple) or not address:
            return None
        host, port = address[0], address[1] if len(address) > 1 else None
    elif event == "socket.getnameinfo":  # like gethostbyaddr: a reverse lookup
        address = args[0]
        host, port = (address[0], address[1]) if isinstance(address, tuple) else (address,
                                                                                 None)
    else:  # getaddrinfo, gethostbyname(_ex), gethostbyaddr
        host, port = args[0], args[1] if event == "socket.getaddrinfo" else None
        if event != "socket.gethostbyaddr" and _ip(host) is not None:
            return None  # an address, not a name: no resolver asked; connect() decides
    if is_local(host):
        return None
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if port is None:
        return str(host)
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def caller() -> str:
    """The module that asked for the connection: the first frame outside the plumbing."""
    frame = sys._getframe(1)
    while frame is not None:
        name = str(frame.f_globals.get("__name__", "?"))
        if name != __name__ and name.partition(".")[0] not in PLUMBING:
            return name
        frame = frame.f_back
    return "?"


def _hook(event: str, args: tuple[Any, ...]) -> None:
    verb = EVENTS.get(event)
    if verb is None:
        return
    target = destination(event, args)
    if target is None:
        return
    log.warning("network: blocked %s %s from %s", verb, target, caller())
    raise PermissionError(errno.EACCES, f"optbench allows no network during a run "
                                        f"({verb} {target})")
