"""Shared test settings. In CI (CI=true) a skipped test fails the run: nothing is skipped silently."""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"} and skipped:
        if reporter:
            reporter.write_line(f"CI: {skipped} test(s) were skipped; skips are not allowed in CI", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
