"""kfp.local tasks forked from the warm step server: same results, same failures, no new interpreter.

(No ``from __future__ import annotations``: KFP reads the component annotations as types.)
"""

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from kfp import dsl, local

from pipelines.warm_steps import StepServer, executor_arguments, warm_steps


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _double(x: int) -> int:
    import os

    return x * 2 if os.environ.get("_KFP_RUNTIME") == "true" else -1


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _whose_child() -> int:
    import os

    return os.getppid()


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _write(text: str, out: dsl.Output[dsl.Dataset]) -> None:
    with open(out.path, "w") as f:
        f.write(text)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _read(data: dsl.Input[dsl.Dataset]) -> str:
    with open(data.path) as f:
        return f.read().upper()


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _fails() -> None:
    raise ValueError("the step broke on purpose")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _at_exit(marker: str) -> None:
    import atexit
    from pathlib import Path

    atexit.register(Path(marker).write_text, "flushed at exit")


@dsl.pipeline
def _chain(text: str) -> str:
    written = _write(text=text)
    return _read(data=written.outputs["out"]).output


@pytest.fixture(scope="module")
def server() -> Iterator[StepServer]:
    warm = StepServer(preload=("kfp.dsl.executor_main",))
    yield warm
    warm.close()


@pytest.fixture(autouse=True)
def _local(tmp_path: Path) -> None:
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))


def test_a_task_runs_in_a_child_of_the_server(server: StepServer) -> None:
    with warm_steps(server), contextlib.redirect_stdout(io.StringIO()):
        task = _whose_child()
    assert task.output == server.pid


def test_inputs_outputs_and_the_kfp_runtime_flag_reach_the_task(server: StepServer) -> None:
    with warm_steps(server), contextlib.redirect_stdout(io.StringIO()):
        task = _double(x=21)
    assert task.output == 42


def test_artifacts_pass_between_forked_tasks(server: StepServer) -> None:
    with warm_steps(server), contextlib.redirect_stdout(io.StringIO()):
        run = _chain(text="warm")
    assert run.output == "WARM"


def test_the_executor_logs_reach_the_run_log_even_when_a_preload_configured_logging() -> None:
    # mlflow.pytorch sets the root logger up at ERROR when imported: the executor's INFO lines must still show
    warm = StepServer(preload=("kfp.dsl.executor_main", "mlflow.pytorch"))
    try:
        logs = io.StringIO()
        with warm_steps(warm), contextlib.redirect_stdout(logs):
            task = _double(x=1)
        assert task.output == 2
        assert "Wrote executor output file" in logs.getvalue()
    finally:
        warm.close()


def test_a_task_runs_its_atexit_handlers_as_an_interpreter_would(server: StepServer, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    with warm_steps(server), contextlib.redirect_stdout(io.StringIO()):
        _at_exit(marker=str(marker))
    assert marker.read_text() == "flushed at exit"


def test_a_failing_task_fails_the_run_and_its_error_is_logged(server: StepServer) -> None:
    logs = io.StringIO()
    with warm_steps(server), contextlib.redirect_stdout(logs), pytest.raises(RuntimeError):
        _fails()
    assert "ValueError: the step broke on purpose" in logs.getvalue()
    assert server.alive()


def test_the_original_runner_is_restored_after_the_block(server: StepServer) -> None:
    with warm_steps(server), contextlib.redirect_stdout(io.StringIO()):
        pass
    with contextlib.redirect_stdout(io.StringIO()):
        task = _whose_child()
    assert task.output != server.pid


def test_only_lightweight_component_commands_are_forked() -> None:
    script = (
        'printf "%s" "$0" > "$p/ephemeral_component.py"\n'
        'python3 -m kfp.dsl.executor_main --component_module_path "$p/ephemeral_component.py" "$@"'
    )
    assert executor_arguments(["sh", "-ec", script, "SOURCE", "--executor_input", "{}"]) == (
        "SOURCE",
        ["--executor_input", "{}"],
    )
    assert executor_arguments(["sh", "-c", "pip install x && " + script, "SOURCE"]) is None
    assert executor_arguments(["python3", "-m", "kfp.dsl.executor_main"]) is None
