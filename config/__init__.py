"""The stack's typed configuration: one pydantic model, its cross-field rules and its loader."""

from config.loader import ConfigError, load_stack_config, validate_config
from config.model import HomelabConfig

__all__ = ["ConfigError", "HomelabConfig", "load_stack_config", "validate_config"]
