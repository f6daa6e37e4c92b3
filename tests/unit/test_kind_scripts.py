"""The cluster scripts check their tools first and name each missing one with where to get it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash") or "/bin/bash"


def run_with_tools(
    script: str, tools: list[str], tmp_path: Path, *, failing: tuple[str, ...] | list[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run a script with a PATH holding only `dirname` and stubs named after the tools (`failing` ones exit 1)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    for tool in [*tools, *failing]:
        stub = bin_dir / tool
        stub.write_text(f"#!/bin/sh\nexit {1 if tool in failing else 0}\n")
        stub.chmod(0o755)
    return subprocess.run(
        [BASH, str(ROOT / "scripts" / script)],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("script", "needed"),
    [
        ("kind-up.sh", ["docker", "kind", "kubectl", "helm", "git"]),
        ("deploy.sh", ["docker", "kind", "kubectl", "helm"]),
        ("kind-down.sh", ["kind"]),
    ],
)
def test_a_script_without_its_tools_names_them_all_and_stops(script: str, needed: list[str], tmp_path: Path) -> None:
    result = run_with_tools(script, [], tmp_path)
    assert result.returncode == 1
    assert f"error: missing tools: {' '.join(needed)}" in result.stderr
    for tool in needed:
        assert f"  {tool}: " in result.stderr


def test_kind_up_names_only_the_tools_that_are_missing(tmp_path: Path) -> None:
    result = run_with_tools("kind-up.sh", ["docker", "kubectl", "git"], tmp_path)
    assert result.returncode == 1
    assert "error: missing tools: kind helm" in result.stderr
    assert "https://kind.sigs.k8s.io/" in result.stderr
    assert "https://helm.sh/docs/intro/install/" in result.stderr
    assert "docker:" not in result.stderr


def test_kind_up_stops_when_the_docker_engine_is_down(tmp_path: Path) -> None:
    result = run_with_tools("kind-up.sh", ["kind", "kubectl", "helm", "git"], tmp_path, failing=["docker"])
    assert result.returncode == 1
    assert "error: the Docker engine is not running" in result.stderr
