"""Opening Feast from the configuration: ${ENV} expansion, Redis swap, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config.features import FeaturesConfig
from flywheel.features.store import FeatureStoreConfigError, load_repo_config

REPO = Path(__file__).resolve().parents[3] / "feature_repo"


def _repo(tmp_path: Path, text: str) -> FeaturesConfig:
    (tmp_path / "feature_store.yaml").write_text(text)
    return FeaturesConfig(repo_path=tmp_path, data_dir=tmp_path / "data")


def test_the_shipped_repo_config_expands_the_data_folder(tmp_path: Path) -> None:
    config = load_repo_config(FeaturesConfig(repo_path=REPO, data_dir=tmp_path), env={})
    assert config.project == "flywheel"
    assert config.online_store.type == "sqlite"
    assert config.online_store.path == f"{tmp_path.resolve()}/online.db"
    assert config.offline_store.type == "duckdb"
    assert Path(config.repo_path) == tmp_path.resolve()


def test_redis_replaces_the_online_store_when_configured(tmp_path: Path) -> None:
    cfg = FeaturesConfig(repo_path=REPO, data_dir=tmp_path, online_store="redis", redis_url="127.0.0.1:6390")
    config = load_repo_config(cfg, env={})
    assert (config.online_store.type, config.online_store.connection_string) == ("redis", "127.0.0.1:6390")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            "project: p\nprovider: local\nregistry: r.db\nonline_store:\n  type: sqlite\n  pathh: x\n",
            "online_store.pathh",
        ),
        (
            "project: p\nprovider: local\nregistry: r.db\nentity_key_serialization_version: new\n",
            "entity_key_serialization_version",
        ),
        ("project: p\nprovider: local\nregistry: ${NOT_SET_ANYWHERE}/r.db\n", "registry"),
        ("project: p\nprovider: local\nregistry: r.db\noffline_store:\n  type: nosuch\n", "offline_store.type"),
    ],
)
def test_a_malformed_feature_store_yaml_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(FeatureStoreConfigError, match=f"(?s)feature_store.yaml.*'{field}'") as info:
        load_repo_config(_repo(tmp_path, text), env={})
    assert str(tmp_path) in str(info.value)


def test_a_missing_or_non_yaml_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FeatureStoreConfigError, match="cannot read"):
        load_repo_config(FeaturesConfig(repo_path=tmp_path / "none", data_dir=tmp_path), env={})
    with pytest.raises(FeatureStoreConfigError, match="not valid YAML"):
        load_repo_config(_repo(tmp_path, "project: [unclosed\n"), env={})
