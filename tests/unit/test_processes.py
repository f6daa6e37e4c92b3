"""Stopping child processes: a process that exits is waited for, one that does not is killed."""

import signal
import subprocess
import sys
import time

from flywheel.processes import wait_or_kill


def test_a_process_that_exits_in_time_gives_its_status() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert wait_or_kill(process, 30) == 3


def test_a_process_that_does_not_exit_is_killed_after_the_timeout() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.monotonic()
    assert wait_or_kill(process, 0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 30
