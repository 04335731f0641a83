"""Adapter names -> their classes, imported only when asked for (an adapter's dependencies
load with it, not with the CLI)."""

from __future__ import annotations

import importlib

from adapters.sdk.errors import ConfigError
from adapters.sdk.hooks import Adapter, check_adapter

# name -> "module:ATTRIBUTE"; each domain package puts its class at adapter.py's ADAPTER.
ADAPTERS: dict[str, str] = {
    name: f"adapters.{name}.adapter:ADAPTER"
    for name in ("lighting", "parking", "ticketing", "tax")
} | {"example": "adapters.sdk.example:ADAPTER"}


def load(name: str) -> type[Adapter]:
    """The adapter class registered as `name`, or at `module:ATTRIBUTE`; ConfigError if none."""
    target = ADAPTERS.get(name, name)
    if ":" not in target:
        known = ", ".join(sorted(ADAPTERS))
        raise ConfigError(f"no adapter named {name!r} (known: {known}; or give module:ATTR)")
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"adapter {name!r}: module {module_name} not found") from None
        raise
    found = getattr(module, attribute, None)
    if not (isinstance(found, type) and issubclass(found, Adapter)):
        raise ConfigError(f"adapter {name!r}: {target} is not an Adapter subclass")
    check_adapter(found)
    return found
