"""The dead-letter file: one JSON line per record that could not go to the broker.

{"stream", "position", "reason", "raw"} (raw: the native record, or the entity the broker or the
contracts refused, under "entity"). Flushed and fsynced before the checkpoint that skips the
record is written, so no record is ever neither published nor dead-lettered; after a crash
between the two, a restart may write a dead letter again (same stream and position).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from adapters.sdk.hooks import Position


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


class DeadLetters:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: IO[str] | None = None
        self.pending = 0

    def add(self, stream: str, position: Position, reason: str, raw: Any = None,
            entity: Any = None) -> None:
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.path.open("a", encoding="utf-8")
        letter: dict[str, Any] = {"stream": stream, "position": position, "reason": reason,
                                  "raw": raw}
        if entity is not None:
            letter["entity"] = entity
        self._out.write(json.dumps(letter, ensure_ascii=False, default=_jsonable) + "\n")
        self.pending += 1

    def sync(self) -> None:
        """Durable before the checkpoint moves past these records."""
        if self._out is not None and self.pending:
            self._out.flush()
            os.fsync(self._out.fileno())
            self.pending = 0

    def close(self) -> None:
        if self._out is not None:
            self.sync()
            self._out.close()
            self._out = None


def read(path: Path) -> list[dict[str, Any]]:
    """The dead letters written so far (for tests and `cetate adapter` users)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
