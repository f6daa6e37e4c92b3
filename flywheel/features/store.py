"""Opening the Feast store from Flywheel's configuration, applying the repo, materializing.

The repo's ``feature_store.yaml`` stays the source of truth; this module expands its ``${ENV}``
variables (``FLYWHEEL_FEATURE_DATA`` is the configured data folder), swaps in Redis when the
configuration asks for it, and validates the result, naming the field when it is malformed.
Relative paths of the batch sources resolve under the data folder.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from flywheel.config.loader import ConfigError, expand_env

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from flywheel.config.features import FeaturesConfig

OFFLINE_FOLDER = "offline"
USER_VIEW = "user_features"
CONTENT_VIEW = "content_features"


class FeatureStoreConfigError(ValueError):
    """feature_store.yaml cannot be read or is invalid; the message names the file and the field."""


def offline_path(cfg: FeaturesConfig, view: str) -> Path:
    """The parquet file behind a view's batch source."""
    return Path(cfg.data_dir) / OFFLINE_FOLDER / f"{view}.parquet"


def feast_compatible(table: Any) -> Any:
    """The Arrow table with every list typed ``list<item: ...>``.

    Feast 0.67 maps a batch source's ``list<element: string>`` columns (the Parquet-compliant name
    that Spark and pyarrow write) to no type and fails to push to the offline store; it knows
    ``list<item: ...>``.
    """
    import pyarrow as pa

    fields = [
        pa.field(fld.name, pa.list_(fld.type.value_type)) if pa.types.is_list(fld.type) else fld for fld in table.schema
    ]
    return table.cast(pa.schema(fields))


def write_offline_table(data: Any, path: Path) -> int:
    """Write a pandas frame or Arrow table as a view's parquet batch source; returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(feast_compatible(table), path, use_compliant_nested_type=False)
    return table.num_rows


def arrow_schema(entity: str, spec: tuple[tuple[str, str], ...]) -> Any:
    """The parquet schema of a view's offline table (as the batch job writes it)."""
    import pyarrow as pa

    kinds = {
        "float": pa.float64(),
        "int": pa.int64(),
        "string": pa.string(),
        "float_list": pa.list_(pa.float64()),
        "string_list": pa.list_(pa.string()),
    }
    fields = [(entity, pa.string()), ("event_timestamp", pa.timestamp("us", tz="UTC"))]
    return pa.schema(fields + [(name, kinds[kind]) for name, kind in spec])


def append_offline(path: Path, frame: Any, entity: str, spec: tuple[tuple[str, str], ...]) -> int:
    """Append rows to a view's offline parquet table (created when missing); returns its row count.

    Feast 0.67's own offline push rewrites the parquet file with pyarrow's compliant list naming
    (``list<element: ...>``), which its schema reader then rejects on the next push
    (``KeyError: 'list<element: string>'``) for every list feature; rows are appended here instead,
    keeping the ``list<item: ...>`` naming Feast maps to its array types. Used by the streaming
    sink and by :meth:`flywheel.features.online.OnlineFeatureReader.push_content`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(entity, spec)
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    if path.exists():
        table = pa.concat_tables([pq.read_table(path).select(schema.names).cast(schema), table])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, use_compliant_nested_type=False)
    tmp.replace(path)
    return table.num_rows


def _env(cfg: FeaturesConfig, env: Mapping[str, str] | None) -> dict[str, str]:
    base = dict(os.environ if env is None else env)
    # the configured data folder wins: the batch sources resolve under it too
    base["FLYWHEEL_FEATURE_DATA"] = str(Path(cfg.data_dir).resolve())
    return base


def _section_of(field: str, raw: Mapping[str, Any]) -> str:
    """The store section a field reported without its section belongs to (Feast drops it)."""
    if field in raw:
        return ""
    for section in ("online_store", "offline_store", "batch_engine"):
        if isinstance(raw.get(section), dict) and field in raw[section]:
            return f"{section}."
    return ""


def _field_errors(source: str, error: Exception, raw: Mapping[str, Any], prefix: str = "") -> str:
    errors = getattr(error, "errors", None)
    lines = [f"{source}: invalid feature store configuration"]
    if callable(errors):
        for item in errors():
            parts = [str(p) for p in item.get("loc", ())]
            section = prefix or (_section_of(parts[0], raw) if parts else "")
            loc = section + ".".join(parts) or "<root>"
            lines.append(f"  field '{loc}': {item.get('msg')}")
    else:
        lines.append(f"  {error}")
    return "\n".join(lines)


def load_repo_config(cfg: FeaturesConfig, *, env: Mapping[str, str] | None = None) -> RepoConfig:
    """The validated Feast configuration of the repo named by ``cfg``.

    Raises:
        FeatureStoreConfigError: The file is missing, is not YAML, a variable is unset or a field
            is invalid (the message names it).
    """
    from feast.repo_config import RepoConfig
    from pydantic import ValidationError

    path = Path(cfg.repo_path) / "feature_store.yaml"
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FeatureStoreConfigError(f"{source}: cannot read the Feast configuration: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise FeatureStoreConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise FeatureStoreConfigError(f"{source}: the top level must be a mapping")
    try:
        expanded: dict[str, Any] = expand_env(raw, source=source, env=_env(cfg, env))
    except ConfigError as exc:
        raise FeatureStoreConfigError(str(exc)) from exc
    if cfg.online_store == "redis":
        expanded["online_store"] = {"type": "redis", "connection_string": cfg.redis_url}
    section = ""
    try:
        config = RepoConfig(**expanded)
        # Feast validates the store sections lazily: force them now, naming the section
        for section in ("online_store", "offline_store"):
            getattr(config, section)
    except ValidationError as exc:
        raise FeatureStoreConfigError(_field_errors(source, exc, expanded, f"{section}." if section else "")) from exc
    except Exception as exc:  # noqa: BLE001 - Feast raises its own types for unknown store kinds
        text = str(exc)
        section = section or (
            "online_store" if "Online Store" in text else "offline_store" if "Offline Store" in text else ""
        )
        where = f" field '{section}.type'" if section else ""
        raise FeatureStoreConfigError(f"{source}: invalid feature store configuration:{where} {exc}") from exc
    config.repo_path = Path(cfg.data_dir).resolve()
    return config


def open_store(cfg: FeaturesConfig, *, env: Mapping[str, str] | None = None) -> FeatureStore:
    """The Feast store of the configuration (creates the data folder)."""
    from feast import FeatureStore

    config = load_repo_config(cfg, env=env)
    Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(Path(cfg.data_dir).resolve()), config=config)


@contextlib.contextmanager
def _importable(repo: Path) -> Iterator[None]:
    sys.path.insert(0, str(repo))
    try:
        with contextlib.chdir(repo):
            yield
    finally:
        sys.path.remove(str(repo))


def repo_objects(repo_path: Path) -> list[Any]:
    """The Feast objects the repo's Python files define, as ``feast apply`` collects them."""
    from feast.repo_operations import parse_repo

    repo = Path(repo_path).resolve()
    with _importable(repo):
        contents = parse_repo(repo)
    return [
        *contents.data_sources,
        *contents.entities,
        *contents.feature_views,
        *contents.feature_services,
    ]


def apply_repo(store: FeatureStore, repo_path: Path) -> list[str]:
    """Register the repo's definitions in the store (``feast apply``); returns their names."""
    objects = repo_objects(repo_path)
    store.apply(objects)
    return sorted(f"{type(o).__name__}:{o.name}" for o in objects)


@contextlib.contextmanager
def offline_paths(store: FeatureStore) -> Iterator[None]:
    """Resolve relative batch-source paths under the data folder for the duration.

    Feast 0.67's duckdb offline store reads a FileSource's parquet path relative to the working
    directory (not to ``repo_path`` as the file offline store does), so offline reads run there.
    """
    with contextlib.chdir(Path(store.config.repo_path or ".")):
        yield


def materialize(store: FeatureStore, start: datetime, end: datetime, views: list[str] | None = None) -> None:
    """Load the newest row per entity stamped in ``[start, end]`` into the online store."""
    with offline_paths(store):
        store.materialize(start_date=start, end_date=end, feature_views=views)
