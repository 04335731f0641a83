"""The checkpoint: the last published position of each stream, in one small JSON file.

Written atomically after each published batch (a temporary file beside it, fsync, rename, fsync
of the directory: POSIX rename is atomic, so a crash leaves the old checkpoint or the new one,
never half of one). A restart reads it and each source resumes after its position.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapters.sdk.errors import ConfigError
from adapters.sdk.hooks import Position

VERSION = 1


def write_atomically(path: Path, document: Any) -> None:
    """`document` as JSON at `path`, all or nothing, durable once this returns."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as out:
        json.dump(document, out, ensure_ascii=False, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself, durable
    finally:
        os.close(directory)


class Checkpoint:
    """Positions by stream; `save` after the batch that reached them is published."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.positions: dict[str, Position] = {}

    def load(self) -> dict[str, Position]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self.positions
        except (OSError, ValueError) as exc:
            raise ConfigError(f"checkpoint {self.path} is unreadable ({exc}); move it away to "
                              f"start over") from None
        if not isinstance(document, dict) or document.get("version") != VERSION:
            raise ConfigError(f"checkpoint {self.path} is not a version {VERSION} checkpoint")
        self.positions = dict(document["positions"])
        return self.positions

    def save(self, positions: Mapping[str, Position]) -> None:
        self.positions.update(positions)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, {"version": VERSION, "positions": self.positions})
