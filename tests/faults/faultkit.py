"""Helpers for the fault-injection tests: each test starts `python -m optbench ...` in a
subprocess, injects a fault (a signal by PID, a lock, a read-only directory, a file-size
limit, a bad file), and asserts what the user sees. Afterwards no process the test started
may be left running, and no `optbench-*` temporary directory may be left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

MARK = "OPTBENCH_FAULT_TEST"  # every process a test starts carries this in its environment


@dataclass
class Cli:
    """Runs the optbench CLI as a user would, with a private TMPDIR and a marker."""

    cwd: Path
    tmpdir: Path
    mark: str

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(self.tmpdir), MARK: self.mark,
                "COLUMNS": "200", **(extra or {})}

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            preexec=None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "optbench", *args], cwd=self.cwd,
                              env=self.env(env), capture_output=True, text=True,
                              timeout=timeout, preexec_fn=preexec)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "optbench", *args], cwd=self.cwd,
                                env=self.env(env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def processes(self) -> list[psutil.Process]:
        """Live processes this test started (the CLI, its children, theirs)."""
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get(MARK) == self.mark and proc.status() != "zombie":
                    found.append(proc)
            except (psutil.Error, OSError):
                continue
        return found

    def workers(self) -> list[psutil.Process]:
        found = []
        for proc in self.processes():
            try:
                if "optbench.run.worker" in " ".join(proc.cmdline()):
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def wait_for_worker(self, timeout: float = 60) -> psutil.Process:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = self.workers()
            if workers:
                return workers[0]
            time.sleep(0.1)
        raise AssertionError("no worker process started")

    def wait_gone(self, timeout: float = 10) -> list[psutil.Process]:
        """The processes still alive after `timeout` seconds (empty when all ended)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self.processes()
            if not left:
                return []
            time.sleep(0.1)
        return self.processes()

    def temp_dirs(self) -> list[Path]:
        return sorted(self.tmpdir.glob("optbench-*"))


def fake_recipe(path: Path, backends: list, preset: str = "smoke", timeout_s: float = 120,
                name: str = "faults") -> Path:
    """A recipe on the test model and the numpy backend (seconds per configuration)."""
    import yaml

    path.write_text(yaml.safe_dump({
        "name": name, "model": "fake-mlp", "backends": backends, "variants": ["fp32"],
        "measure": {"preset": preset, "timeout_s": timeout_s}}))
    return path
