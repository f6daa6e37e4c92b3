"""Run a pipeline locally with kfp.local (SubprocessRunner, the current interpreter's packages).

Each task is forked from a warm interpreter (:mod:`pipelines.warm_steps`) instead of starting one.

kfp.local prints every task's streamed logs to stdout; here they go to a log file and each
task start / finish is reported to a callback (the CLI turns it into progress lines).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.compile import pipeline_function
from pipelines.warm_steps import warm_steps

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_ERROR = re.compile(r"^[A-Za-z_.]*(Error|Exception): .*")
ProgressCallback = Callable[[str, str], None]
"""Called with (task name, "started" | "SUCCESS" | "FAILURE")."""


class _ProgressStream(io.TextIOBase):
    """A stdout stand-in: writes everything to the log, reports task events."""

    def __init__(self, log: io.TextIOBase, on_event: ProgressCallback | None):
        self._log, self._on_event, self._buffer = log, on_event, ""

    def write(self, text: str) -> int:
        self._log.write(text)
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            if self._on_event is None:
                continue
            plain = _ANSI.sub("", line)
            if started := _STARTED.search(plain):
                self._on_event(started.group(1), "started")
            elif finished := _FINISHED.search(plain):
                self._on_event(finished.group(1), finished.group(2))
        return len(text)

    def flush(self) -> None:
        self._log.flush()


def _last_error(log_path: Path) -> str:
    """The last ``SomethingError: message`` line of the task logs (the cause of a failure)."""
    found = ""
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            match = _ERROR.match(_ANSI.sub("", line).strip())
            if match:
                found = match.group(0)
    return found


def run_local(
    name: str,
    arguments: dict[str, Any],
    *,
    pipeline_root: str | Path,
    log_path: str | Path,
    on_event: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run pipeline ``name`` with ``arguments`` under kfp.local; return its outcome (parsed JSON).

    A task that raises ends the run with ``{"status": "failed", "reason": ...}`` naming the
    task; the full logs are in ``log_path``.
    """
    from kfp import local

    func = pipeline_function(name)
    Path(pipeline_root).mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
    with open(log_path, "w", encoding="utf-8") as log, warnings.catch_warnings():
        # kfp.local warns that the project image is not used and display names are ignored: expected here
        warnings.filterwarnings("ignore", message=".*base image.*")
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        stream = _ProgressStream(log, on_event)
        try:
            with contextlib.redirect_stdout(stream), warm_steps():
                task = func(**arguments)
        except RuntimeError as exc:
            reason = _ANSI.sub("", str(exc))
            error = _last_error(Path(log_path))
            return {"status": "failed", "reason": f"{reason} {error}".strip(), "log": str(log_path)}
    outcome = json.loads(task.output)
    outcome["log"] = str(log_path)
    return outcome
