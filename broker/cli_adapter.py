"""`cetate adapter ...` commands (being written: see the issue tracker)."""

from __future__ import annotations

import argparse
from typing import Any


def add_adapter_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register the `adapter` subcommands on the top-level parser."""
