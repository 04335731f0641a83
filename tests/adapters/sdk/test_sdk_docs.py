"""docs/vendors.md cannot rot: its example is adapters/sdk/example.py as it is (which the other
tests run), and its configuration example is read as the CLI reads it."""

from __future__ import annotations

import re
import tomllib

from adapters import registry
from adapters.sdk.config import for_adapter
from adapters.sdk.example import FleetAdapter
from tests.adapters.support import ROOT

GUIDE = (ROOT / "docs" / "vendors.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE, re.S)


def test_the_guide_shows_the_example_file_whole() -> None:
    example = (ROOT / "adapters" / "sdk" / "example.py").read_text()
    assert example in blocks("python")


def test_the_guide_configuration_reads_as_documented() -> None:
    [toml] = blocks("toml")
    config = for_adapter(tomllib.loads(toml), "example")
    assert config["url"].endswith("/api/positions") and config["batch_size"] == 500
    assert config["simulator"] == {"seed": 7, "bad_every": 50}
    assert registry.load("example") is FleetAdapter
