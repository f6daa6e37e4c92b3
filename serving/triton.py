"""Start a real Triton Inference Server on 127.0.0.1 with the ranker's python-backend repository.

The ``tritonserver`` binary and its python backend come from the PyPI wheel ``nvidia-pytriton``
(installed with ``--no-deps``: only the binary is used, never the pytriton API). Two details make it
run here: the backend directory must hold ``python/{libtriton_python.so,
triton_python_backend_stub, triton_python_backend_utils.py}`` with the stub built for this
interpreter's Python version, and the stub must find *this* interpreter's ``libpython`` first
(``LD_LIBRARY_PATH``) and this environment's packages to import torch (``FLYWHEEL_TRITON_PYTHONPATH``,
which the exported model.py puts on ``sys.path``: the stub ignores ``PYTHONPATH``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from flywheel.export.torchscript import script_ranker, write_python_model
from flywheel.models.bundle import ModelBundle
from flywheel.processes import wait_or_kill


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pytriton_root() -> Path:
    """The installed ``pytriton`` package folder (not imported).

    Raises:
        FileNotFoundError: The nvidia-pytriton wheel is not installed.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("tritonserver not found: install it with  pip install --no-deps nvidia-pytriton==0.7.0")
    return Path(next(iter(spec.submodule_search_locations)))


def backend_directory(dest: Path) -> Path:
    """Lay out Triton's backend directory under ``dest`` (python backend + this Python's stub)."""
    root = pytriton_root() / "tritonserver"
    python_dir = dest / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(root / "backends" / "python" / name, python_dir / name)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copy2(root / "python_backend_stubs" / version / "triton_python_backend_stub", python_dir)
    return dest


def triton_environment() -> dict[str, str]:
    """The environment of the server: this interpreter's libpython first, then the wheel's libraries."""
    env = dict(os.environ)
    libs = [str(sysconfig.get_config_var("LIBDIR")), str(pytriton_root().parent / "nvidia_pytriton.libs")]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    env["FLYWHEEL_TRITON_PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


@dataclass
class TritonServer:
    """A running tritonserver process."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    log_path: Path

    @property
    def http_url(self) -> str:
        """host:port of the HTTP endpoint (tritonclient's url)."""
        return f"127.0.0.1:{self.http_port}"

    def wait_ready(self, model_name: str, timeout_s: float) -> None:
        """Block until the model is ready.

        Raises:
            RuntimeError: The server exited, or the model is not ready within ``timeout_s`` (names the log).
        """
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(self.http_url)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"tritonserver exited with code {self.process.returncode}; see {self.log_path}")
                try:
                    if client.is_model_ready(model_name):
                        return
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                time.sleep(0.2)
        finally:
            client.close()
        raise RuntimeError(f"model {model_name!r} not ready on tritonserver within {timeout_s} s; see {self.log_path}")

    def reload(self, model_name: str) -> None:
        """Load the model again with every version now in the repository."""
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(self.http_url, network_timeout=120.0)
        try:
            client.load_model(model_name)
        finally:
            client.close()

    def stop(self) -> None:
        """Terminate the server (kill after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            wait_or_kill(self.process, 10)


def add_ranker_version(repository: Path, bundle: ModelBundle, version: int, *, model_name: str = "ranker") -> Path:
    """Script the bundle's serving ranker into ``repository/<model_name>/<version>/`` (python backend)."""
    scripted = repository / f".{model_name}-{version}.pt"
    repository.mkdir(parents=True, exist_ok=True)
    script_ranker(bundle).save(str(scripted))
    try:
        return write_python_model(repository / model_name, scripted, version)
    finally:
        scripted.unlink()


def triton_version(version: str) -> int:
    """The Triton model version of a registry version ("7" -> 7; a local bundle -> 1)."""
    return int(version) if version.isdigit() and int(version) > 0 else 1


def start_triton(
    repository: Path, workdir: Path, *, http_port: int, grpc_port: int, model_name: str = "ranker"
) -> TritonServer:
    """Start tritonserver on 127.0.0.1 over ``repository`` (python backend), loading ``model_name``.

    The model control mode is explicit: after adding a version, :meth:`TritonServer.reload` loads it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    backends = backend_directory(workdir / "backends")
    binary = pytriton_root() / "tritonserver" / "bin" / "tritonserver"
    log_path = workdir / "tritonserver.log"
    command = [
        str(binary),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
        "--allow-gpu-metrics=false",
        "--strict-readiness=true",
        "--model-control-mode=explicit",
        f"--load-model={model_name}",
        "--exit-timeout-secs=5",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=triton_environment())
    return TritonServer(process, http_port, grpc_port, log_path)
