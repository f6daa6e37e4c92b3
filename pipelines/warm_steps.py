"""kfp.local steps forked from a warm interpreter instead of a new one per step.

``SubprocessRunner(use_venv=False)`` starts ``python3 -m kfp.dsl.executor_main`` for every task:
each start imports kfp (about 2 s: ``kfp/__init__`` imports the client and the kubernetes SDK)
and then the flywheel step module (torch, pandas, MLflow: 4-6 s more on this machine). Here one
server process imports all of that once; each task is then a ``fork()`` of it that runs the same
``executor_main`` with the same arguments, environment and working folder, so kfp.local still
resolves the DAG, the artifacts and the executor input and output exactly as before. Only the
process start changes; compiled pipelines are untouched.

:func:`warm_steps` installs this for the duration of a ``with`` block; a task that is not a
lightweight Python component (or any failure of the server) goes through kfp's own path.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flywheel.processes import wait_or_kill

#: What the server imports before it forks: kfp's executor, the step modules the components call and
#: the heavy libraries those import inside their functions (Evidently 3.4 s, MLflow 0.9 s here).
#: None of them starts a thread on import (a fork copies only the calling thread).
PRELOAD = (
    "kfp.dsl.executor_main",
    "flywheel.config.training",
    "flywheel.models.steps",
    "flywheel.evaluation.steps",
    "flywheel.quality.gate",
    "flywheel.registry.steps",
    "flywheel.registry.mlflow_registry",
    "mlflow",
    "mlflow.pytorch",
    "evidently",
    "evidently.presets",
    "evidently.metrics",
    "matplotlib",
)
_EXECUTOR = "kfp.dsl.executor_main"


def executor_arguments(full_command: list[str]) -> tuple[str, list[str]] | None:
    """The component source and the executor's arguments of a kfp.local task command, or None.

    A lightweight component runs as ``sh -ec SCRIPT SOURCE ARGS...`` where the script writes
    SOURCE to a file and runs ``python3 -m kfp.dsl.executor_main --component_module_path FILE
    ARGS...``; anything else (a container component, a script that installs packages) is None.
    """
    if len(full_command) < 4 or full_command[0] != "sh" or full_command[1] not in ("-c", "-ec"):
        return None
    script = full_command[2]
    if _EXECUTOR not in script or "pip install" in script or '"$0"' not in script:
        return None
    return full_command[3], list(full_command[4:])


def _run_in_child(request: dict[str, Any]) -> int:
    """In a forked child: set up the task's environment, run the executor, return its exit code."""
    code = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        module = Path(request["folder"]) / "ephemeral_component.py"
        module.write_text(request["source"])
        sys.argv = [_EXECUTOR, "--component_module_path", str(module), *request["args"]]
        # a fresh interpreter's root logger: a preloaded import (mlflow.pytorch) set one up at ERROR,
        # which would swallow the executor's own INFO lines (its basicConfig adds nothing then)
        root = logging.getLogger()
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
        from kfp.dsl.executor_main import executor_main

        executor_main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the task's failure is reported through its log and exit code
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    return code


def serve(preload: tuple[str, ...] = PRELOAD) -> None:
    """The server loop: import ``preload``, then per request line fork a child and answer its exit code."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever an import prints must not reach the reply channel
    for name in preload:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a step imports what it needs itself; the server only warms
            traceback.print_exc()
    replies.write("ready\n")
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = _run_in_child(request)
            # as an interpreter's exit does: the atexit handlers run (MLflow flushes its async logging);
            # the teardown of every loaded module is skipped (nothing to observe, up to a second with torch)
            atexit._run_exitfuncs()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        replies.write(f"{os.waitstatus_to_exitcode(status)}\n")


class StepServer:
    """A warm interpreter that runs kfp.local tasks by forking (one task at a time)."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD) -> None:
        bootstrap = (
            "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
            "from pipelines.warm_steps import serve; serve(tuple(json.loads(sys.argv[2])))"
        )
        self._process = subprocess.Popen(
            [sys.executable, "-c", bootstrap, json.dumps(sys.path), json.dumps(list(preload))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        self._ready = False

    @property
    def pid(self) -> int:
        """The server's process id (each task's parent)."""
        return self._process.pid

    def alive(self) -> bool:
        """Whether the server is still running."""
        return self._process.poll() is None

    def run(self, source: str, args: list[str], env_vars: dict[str, str] | None = None) -> int:
        """Run one task (the component ``source`` with the executor ``args``); print its log; return its exit code."""
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._lock, tempfile.TemporaryDirectory() as tmp:
            if not self._ready:
                if self._process.stdout.readline().strip() != "ready":
                    raise RuntimeError("the step server did not start")
                self._ready = True
            log = Path(tmp) / "task.log"
            env = {**os.environ, **(env_vars or {}), "_KFP_RUNTIME": "true"}
            request = {"source": source, "args": args, "env": env, "cwd": os.getcwd(), "log": str(log), "folder": tmp}
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            reply = self._process.stdout.readline().strip()
            if not reply:
                raise RuntimeError("the step server stopped")
            for line in log.read_text(errors="replace").splitlines():
                print(line)
            print("\n")  # as kfp's own runner does after a task's logs
            return int(reply)

    def close(self) -> None:
        """Stop the server (it exits when its input closes)."""
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        wait_or_kill(self._process, 10)


_server: StepServer | None = None
_server_lock = threading.Lock()


def step_server() -> StepServer:
    """The process's step server, started on first use (it warms while the caller works on)."""
    global _server
    with _server_lock:
        if _server is None or not _server.alive():
            _server = StepServer()
            atexit.register(_server.close)
        return _server


@contextlib.contextmanager
def warm_steps(server: StepServer | None = None) -> Iterator[None]:
    """Within the block, kfp.local's SubprocessRunner forks each lightweight task from ``server``
    (default: the process's :func:`step_server`)."""
    from kfp.local import subprocess_task_handler as handler

    original = handler.run_local_subprocess

    def run_local_subprocess(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        task = executor_arguments(full_command)
        nonlocal server
        server = server or step_server()
        if task is None or not server.alive():
            return original(full_command=full_command, env_vars=env_vars)
        return server.run(task[0], task[1], env_vars)

    handler.run_local_subprocess = run_local_subprocess
    try:
        yield
    finally:
        handler.run_local_subprocess = original
