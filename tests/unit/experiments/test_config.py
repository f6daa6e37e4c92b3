"""Experiment registries that are wrong are rejected with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flywheel.config import ConfigError, load_config
from flywheel.experiments.config import ExperimentRegistry, ExperimentSpec, load_registry_file


def _exp(id_: str, **kw: Any) -> dict[str, Any]:
    return {"id": id_, "layer": "home", **kw}


def _registry(*experiments: dict[str, Any], **kw: Any) -> ExperimentRegistry:
    return ExperimentRegistry.model_validate(
        {"layers": [{"name": "home"}, {"name": "search"}], "experiments": list(experiments), **kw}
    )


def _reason(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return " | ".join(e["msg"] for e in exc.value.errors())


def test_a_valid_registry_is_accepted() -> None:
    reg = _registry(
        _exp("a", allocation_percent=40),
        _exp("b", offset_percent=40, allocation_percent=60),
        {"id": "c", "layer": "search", "allocation_percent": 100},
    )
    assert [e.bucket_range for e in reg.experiments] == [(0, 4000), (4000, 10000), (0, 10000)]


def test_overlapping_ranges_in_a_layer_are_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        _registry(_exp("a", allocation_percent=30), _exp("b", offset_percent=20, allocation_percent=30))
    assert "layer 'home': experiments 'a' [0%, 30%) and 'b' [20%, 50%) overlap" in _reason(exc)


def test_allocations_above_100_percent_are_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        _registry(_exp("a", allocation_percent=70), _exp("b", allocation_percent=60))
    assert "allocations add up to 130% (more than 100%)" in _reason(exc)


def test_a_range_running_past_100_percent_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        _registry(_exp("a", offset_percent=80, allocation_percent=30))
    assert "range [80%, 110%) exceeds 100%" in _reason(exc)


def test_unknown_metrics_are_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        ExperimentSpec(id="a", primary_metric="ctr", metrics=("watch_hours", "revenue"))
    assert "unknown metric 'revenue'" in _reason(exc)
    with pytest.raises(ValidationError) as exc:
        ExperimentSpec.model_validate({"id": "a", "guardrails": [{"metric": "latency"}]})
    assert "unknown metric 'latency'" in _reason(exc)
    assert ExperimentSpec(id="a", primary_metric="day7_active").primary_metric == "day7_active"


@pytest.mark.parametrize("weight", [0, -1])
def test_non_positive_variant_weights_are_rejected(weight: float) -> None:
    with pytest.raises(ValidationError) as exc:
        ExperimentSpec.model_validate(
            {"id": "a", "variants": [{"name": "control", "weight": 1}, {"name": "treatment", "weight": weight}]}
        )
    assert f"variant weight must be positive, got {weight}" in _reason(exc)


def test_other_mistakes_are_rejected_with_reasons() -> None:
    with pytest.raises(ValidationError) as exc:
        ExperimentSpec(id="a", control="baseline")
    assert "control 'baseline' is not a variant" in _reason(exc)
    with pytest.raises(ValidationError) as exc:
        _registry({"id": "a", "layer": "nowhere"})
    assert "unknown layer 'nowhere'" in _reason(exc)
    with pytest.raises(ValidationError) as exc:
        _registry(_exp("a", allocation_percent=10), _exp("a", offset_percent=50, allocation_percent=10))
    assert "experiment ids repeat" in _reason(exc)
    with pytest.raises(ValidationError) as exc:
        _registry(_exp("a", allocation_percent=12.345))
    assert "not a multiple of 0.01%" in _reason(exc)
    with pytest.raises(ValidationError):
        ExperimentSpec.model_validate({"id": "a", "colour": "blue"})  # unknown keys


def test_the_configuration_file_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "flywheel.yaml"
    path.write_text(
        "experiments:\n  registry:\n    experiments:\n"
        "      - {id: a, allocation_percent: 60}\n      - {id: b, allocation_percent: 50}\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(path) in str(exc.value)
    assert "experiments.registry" in str(exc.value)
    assert "more than 100%" in str(exc.value)


def test_a_registry_file_is_validated_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text("experiments:\n  - {id: a, primary_metric: revenue}\n")
    with pytest.raises(
        ValueError, match=r"registry.yaml.*\n.*field 'experiments.0.primary_metric'.*unknown metric 'revenue'"
    ):
        load_registry_file(path)


def test_the_defaults_ship_the_home_row_experiment() -> None:
    cfg = load_config()
    exp = cfg.experiments.registry.experiment("home_row_ranker_v2")
    assert exp.weights == {"control": 0.5, "treatment": 0.5}
    assert exp.primary_metric == "ctr"
    with pytest.raises(KeyError, match="unknown experiment 'nope'"):
        cfg.experiments.registry.experiment("nope")
