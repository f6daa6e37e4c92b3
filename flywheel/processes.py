"""Child processes the platform starts (a local JVM, tritonserver, dataflow and step servers)."""

from __future__ import annotations

import subprocess
from typing import Any


def wait_or_kill(process: subprocess.Popen[Any], timeout_s: float) -> int:
    """Wait up to ``timeout_s`` for ``process`` to exit, kill it if it has not; its exit status."""
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
