"""Every chart test runs once per value scenario (the defaults and each ci/*-values.yaml)."""

from __future__ import annotations

import pytest

from tests.support.chart import Rendered, render_scenario, scenarios


@pytest.fixture(params=sorted(scenarios()), scope="session")
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """One scenario rendered by the real Helm engine."""
    return render_scenario(request.param)
