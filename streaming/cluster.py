"""Several dataflow processes on this machine: one Bytewax cluster over 127.0.0.1.

Each process runs the same dataflow with ``process_id`` and the list of every process's
address; Bytewax spreads the source partitions (the topic's partitions) and the content shards
over all of their workers. On Kubernetes each pod is one process of the cluster.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable, Sequence

from flywheel.processes import wait_or_kill


def local_addresses(processes: int) -> list[str]:
    """``127.0.0.1:port`` for each process, on ports free right now."""
    sockets = [socket.socket() for _ in range(processes)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_local_cluster(command_for: Callable[[int, Sequence[str]], list[str]], processes: int) -> int:
    """Start ``processes`` processes of one cluster and wait for all of them.

    Args:
        command_for: The command line of process ``i``, given the addresses of all processes.
        processes: How many processes.

    Returns:
        0 when every process exited cleanly, else the first failing exit status (the other
        processes are then stopped; so are all of them when this process gets SIGTERM).
    """
    addresses = local_addresses(processes)
    procs = [subprocess.Popen(command_for(i, addresses)) for i in range(processes)]
    failed = 0

    def stop(signum: int, _frame: object) -> None:  # SIGTERM (e.g. a pod stopping): stop the processes too
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        pending = list(procs)
        while pending:
            for proc in list(pending):
                try:
                    code = proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    continue
                pending.remove(proc)
                if code != 0 and not failed:
                    failed = code
                    for other in pending:
                        other.terminate()
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            wait_or_kill(proc, 10)
    return failed
