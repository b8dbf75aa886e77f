"""Helpers for tests that drive real processes: wait for a state (never for a fixed time), find every
process a command left behind, run the `rag` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition, timeout: float = 120) -> bool:
    """Poll `condition` until it holds; False if it still does not after `timeout` seconds (a failure bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def processes_in_session(session: int) -> dict[int, str]:
    """Every live process (pid -> command line) in a session: what a command started with
    start_new_session=True, and anything it started, left behind, or that was re-parented to init."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z" and int(fields[3]) == session:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue  # gone meanwhile
    return found


def parse_workers(session: int) -> list[int]:
    return [pid for pid, cmd in processes_in_session(session).items() if "rag.prepare" in cmd]


def rag(*args: str, env: dict | None = None, ignore_sigint: bool = False, **popen) -> subprocess.Popen:
    """`rag ARGS` as its own session (so everything it starts can be found), stdout and stderr piped.
    ignore_sigint: start it as a shell starts a background job, with SIGINT ignored."""
    import signal

    def prepare():
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen([sys.executable, "-m", "rag.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=prepare,
                            env={**os.environ, **(env or {})}, **popen)


def loaded(pid: int, library: str) -> bool:
    """Whether the process has mapped a shared library whose name contains `library` (e.g. libtorch)."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def catches(pid: int, signum: int) -> bool:
    """Whether the process has installed its own handler for a signal (SigCgt in /proc/PID/status)."""
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
