"""Loading and validating the Flywheel YAML configuration."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flywheel.config.models import FlywheelConfig

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DEFAULTS_NAME = "defaults.yaml"


class ConfigError(ValueError):
    """A configuration file could not be read or is invalid; names the file and the field."""


def expand_env(value: Any, *, source: str, location: str = "", env: dict[str, str] | None = None) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree.

    Args:
        value: The parsed YAML value (dict, list or scalar).
        source: The file name, used in error messages.
        location: The dotted field path of ``value``, used in error messages.
        env: The environment to read; ``os.environ`` when None.

    Returns:
        The same tree with variables substituted.

    Raises:
        ConfigError: A variable without a default is not set.
    """
    environ = os.environ if env is None else env
    if isinstance(value, dict):
        return {
            k: expand_env(v, source=source, location=f"{location}.{k}" if location else str(k), env=env)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [expand_env(v, source=source, location=f"{location}[{i}]", env=env) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{source}: field '{location}': environment variable ${{{name}}} is not set "
                f"and has no default (write ${{{name}:-default}} to give one)"
            )

        return _ENV_PATTERN.sub(substitute, value)
    return value


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<root>"
        lines.append(f"  field '{field}': {item['msg']}")
    return "\n".join(lines)


def merge_over(base: Any, override: Any) -> Any:
    """``override`` laid over ``base`` key by key: mappings merge recursively, anything else
    (scalars, lists, null) in ``override`` replaces the value in ``base``."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge_over(base[key], value) if key in base else value
        return merged
    return override


def default_config_text() -> str:
    """The YAML text of the defaults shipped in the package."""
    return resources.files("flywheel.config").joinpath(DEFAULTS_NAME).read_text(encoding="utf-8")


def load_config(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> FlywheelConfig:
    """Load a configuration file laid over the shipped defaults, or the defaults alone.

    A file needs to hold only what it changes: it is merged into ``defaults.yaml`` key by key
    (see :func:`merge_over`) before ``${VAR}`` expansion and validation, so a file with one
    setting keeps every other default, ``${FLYWHEEL_HOME}`` included.

    Args:
        path: A YAML file; None uses the defaults embedded in the package.
        env: The environment for ``${VAR}`` expansion; ``os.environ`` when None.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The file is missing, is not YAML, or a field is invalid.
    """
    if path is None:
        source, text = f"<defaults>/{DEFAULTS_NAME}", default_config_text()
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read configuration: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    if path is not None:
        raw = merge_over(yaml.safe_load(default_config_text()), raw)
    expanded = expand_env(raw, source=source, env=env)
    try:
        return FlywheelConfig.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(source, exc)) from exc
