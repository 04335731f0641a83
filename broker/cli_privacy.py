"""`cetate privacy ...` commands (being written: see the issue tracker)."""

from __future__ import annotations

import argparse
from typing import Any


def add_privacy_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register the `privacy` subcommands on the top-level parser."""
