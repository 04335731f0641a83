"""The --config FILE of `cetate adapter`: TOML (.toml) or JSON, one flat table.

SDK keys: broker, state_dir, batch_size, linger, tenant, api_key, token, secret_file, write_back,
write_back_host, write_back_port, write_back_url, and a [simulator] table for the simulator.
Every other key is the adapter's own (URLs, topics, paths): Adapter.source(config) reads them.
A table named after the adapter ([lighting]) is merged over the top level, so one file can hold
the shared keys (broker, secret_file) and a section per adapter.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from adapters.sdk.errors import ConfigError


def load_config(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        loaded = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"config {file}: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config {file}: not a table of settings")
    return loaded


def for_adapter(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The top-level keys, then those of the table named `name` (if any) over them."""
    section = config.get(name)
    if not isinstance(section, dict):
        return dict(config)
    return {**{k: v for k, v in config.items() if k != name}, **section}
