"""Configuration: defaults, ${ENV} expansion, strictness, errors that name the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import ConfigError, expand_env, load_config


def test_defaults_load_and_expand_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", "/srv/fw")
    config = load_config()
    assert config.home == Path("/srv/fw")
    assert config.event_log.local.path == Path("/srv/fw/log")
    assert config.event_log.backend == "local"


def test_env_default_used_when_variable_unset() -> None:
    assert expand_env({"a": "${NOPE_X:-fallback}/x"}, source="f.yaml", env={}) == {"a": "fallback/x"}


def test_missing_env_without_default_names_file_and_field() -> None:
    with pytest.raises(ConfigError, match=r"f\.yaml: field 'event_log\.kafka\.bootstrap_servers'.*\$\{BROKERS\}"):
        expand_env({"event_log": {"kafka": {"bootstrap_servers": "${BROKERS}"}}}, source="f.yaml", env={})


def test_unknown_key_is_rejected_with_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "flywheel.yaml"
    path.write_text("event_log:\n  partitons: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "event_log.partitons" in message
    assert "Extra inputs are not permitted" in message


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("event_log:\n  partitions: many\n")
    with pytest.raises(ConfigError, match=r"field 'event_log\.partitions'"):
        load_config(path)


def test_backend_choice_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("event_log:\n  backend: pulsar\n")
    with pytest.raises(ConfigError, match=r"event_log\.backend"):
        load_config(path)


def test_env_expansion_in_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("event_log:\n  backend: kafka\n  kafka:\n    bootstrap_servers: ${BS}\n")
    config = load_config(path, env={"BS": "10.0.0.1:9092"})
    assert config.event_log.kafka.bootstrap_servers == "10.0.0.1:9092"


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("event_log: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_a_file_with_one_setting_keeps_every_other_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    path = tmp_path / "one.yaml"
    path.write_text("training:\n  retrieval:\n    candidates: 77\n")
    config = load_config(path)
    defaults = load_config()
    assert config.training.retrieval.candidates == 77
    assert config.home == tmp_path / "home"
    assert config.event_log.local.path == tmp_path / "home" / "log"
    # every other value is the defaults.yaml one (not the pydantic default), e.g. the tracking URI
    assert config.training.tracking_uri == f"sqlite:///{tmp_path / 'home'}/mlflow.db"
    expected = defaults.model_dump()
    expected["training"]["retrieval"]["candidates"] = 77
    assert config.model_dump() == expected


def test_merged_lists_are_replaced_not_appended(tmp_path: Path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text("training:\n  eval_k: [10]\n")
    assert load_config(path).training.eval_k == (10,)
