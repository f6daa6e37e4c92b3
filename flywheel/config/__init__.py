"""One configuration path: YAML -> ${ENV} expansion -> strict pydantic models.

Parse with :func:`load_config` in entry points only and pass the result down.
"""

from flywheel.config.loader import ConfigError, expand_env, load_config
from flywheel.config.models import FlywheelConfig

__all__ = ["ConfigError", "FlywheelConfig", "expand_env", "load_config"]
