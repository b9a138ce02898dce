"""`optbench ls` and `optbench env`: what is registered and what works here."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from optbench.cli.app import app, out_console, say
from optbench.errors import PluginNotFound

KINDS = ("backends", "transforms", "workloads", "meters", "models")


def describe_kind(kind: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) for `optbench ls KIND`."""
    if kind not in KINDS:
        raise PluginNotFound("plugin kind", kind, KINDS)
    if kind == "models":
        from optbench.models import cards

        return (["model", "input", "dataset", "summary"],
                [[c.name, "x".join(map(str, c.input_shape)), c.dataset, c.summary]
                 for c in cards().values() if not c.hidden])
    if kind == "backends":
        from optbench.backends import BACKENDS

        rows = []
        for entry in BACKENDS.entries():
            cls = BACKENDS.get(entry.name)
            available = cls.availability()
            precisions = "; ".join(f"{d}: {','.join(p)}" for d, p in cls.precisions.items())
            rows.append([entry.name, ",".join(entry.aliases), "yes" if available else "no",
                         precisions, entry.summary if available else available.reason])
        return ["backend", "aliases", "available", "precisions", "notes"], rows
    if kind == "meters":
        from optbench.meters import METERS
        from optbench.meters.base import MeterContext

        rows = []
        for entry in METERS.entries():
            cls = METERS.get(entry.name)
            available = cls.availability(MeterContext(device="cuda" if cls.role == "gpu"
                                                      else "cpu"))
            rows.append([entry.name, cls.role, "yes" if available else "no",
                         entry.summary if available else available.reason])
        return ["meter", "role", "available", "notes"], rows
    from optbench.transforms import TRANSFORMS
    from optbench.workloads import WORKLOADS

    registry = TRANSFORMS if kind == "transforms" else WORKLOADS
    return ([kind[:-1], "aliases", "summary"],
            [[e.name, ",".join(e.aliases), e.summary] for e in registry.entries()])


def environment_report() -> dict[str, Any]:
    """Fingerprint plus meter availability, grouped for display."""
    from optbench.env import fingerprint, git_state
    from optbench.meters import METERS
    from optbench.meters.base import MeterContext

    fp = fingerprint()
    sha, dirty = git_state()
    meters: dict[str, Any] = {}
    for name in METERS.names():
        cls = METERS.get(name)
        ctx = MeterContext(device="cuda" if cls.role == "gpu" else "cpu")
        available = cls.availability(ctx)
        if not available:
            meters[name] = f"unavailable: {available.reason}"
            continue
        meter = cls(ctx)
        try:  # the self-test tells the channels, the source used and the update period
            meter.open()
            meters[name] = meter.describe()
        except Exception as exc:  # noqa: BLE001 - shown to the user as the reason
            meters[name] = f"self-test failed: {exc}"
        finally:
            meter.close()
    return {
        "optbench": {"version": fp["optbench_version"], "git_sha": sha, "git_dirty": dirty,
                     "schema": fp["schema_version"]},
        "machine": {"hostname": fp["hostname"], "os": f"{fp['os']} {fp['kernel']}",
                    "python": fp["python"], "container": fp["in_container"],
                    "memory_gib": round((fp["memory_bytes"] or 0) / 2**30, 1), **fp["cpu"]},
        "gpus": fp["gpus"],
        "powercap": fp["powercap"],
        "meters": meters,
        "packages": {k: v or "not installed" for k, v in fp["packages"].items()},
    }


@app.command("ls")
def list_plugins(
    kind: str = typer.Argument(..., help="backends | transforms | workloads | meters | models"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List plugins of a kind with their availability here."""
    headers, rows = describe_kind(kind)
    if as_json:
        sys.stdout.write(json.dumps([dict(zip(headers, row)) for row in rows], indent=2) + "\n")
        return
    table = Table(*headers, show_lines=False)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    out_console.print(table)


@app.command()
def env(as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
        check: bool = typer.Option(False, "--check", help="try every backend on every device "
                                   "(and each energy meter) for real, tiny; exit 0 only when "
                                   "every path asked for works"),
        paths: Optional[str] = typer.Option(None, "--paths", help="with --check: the paths "
                                            "to try, e.g. torch:cuda,ort:tensorrt,nvml "
                                            "(default: all)")) -> None:
    """Hardware, software versions, and which meters work here (and why not)."""
    if check or paths is not None:
        raise typer.Exit(self_check(paths, as_json))
    data = environment_report()
    if as_json:
        out_console.print_json(json.dumps(data, default=str))
        return
    for section, values in data.items():
        out_console.print(f"[bold]{section}[/bold]")
        if isinstance(values, dict):
            for key, value in values.items():
                say(f"  {key}: {value}")
        else:
            for value in values:
                say(f"  {value}")


def self_check(paths: str | None, as_json: bool) -> int:
    """Run the checks (run/selfcheck.py), one line each as it ends; 0 when all work."""
    from optbench.errors import UsageError, closest
    from optbench.run.selfcheck import CHECKS, run_isolated

    chosen = list(CHECKS) if paths is None else [p.strip() for p in paths.split(",")]
    for path in chosen:
        if path not in CHECKS:
            hint = closest(path, CHECKS)
            raise UsageError(f"--paths: no check '{path}'; choose from {', '.join(CHECKS)}"
                             + (f" (did you mean '{hint}'?)" if hint else ""))
    results = []
    for path in chosen:
        result = run_isolated(path)
        results.append(result)
        if not as_json:
            say(result.line(), None if result.ok else "yellow")
    if as_json:
        sys.stdout.write(json.dumps([r.__dict__ for r in results], indent=2) + "\n")
    else:
        works = sum(r.ok for r in results)
        say(f"{works} of {len(results)} paths work here")
    return 0 if all(r.ok for r in results) else 1
