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
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path


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

    def stop(self) -> None:
        """Terminate the server (kill after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_triton(repository: Path, workdir: Path, *, http_port: int, grpc_port: int) -> TritonServer:
    """Start tritonserver on 127.0.0.1 over ``repository`` (a python-backend model repository)."""
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
        "--exit-timeout-secs=5",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=triton_environment())
    return TritonServer(process, http_port, grpc_port, log_path)
