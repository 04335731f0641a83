"""What a run has done, counted: logged periodically and at the end, and kept in status.json
(rewritten atomically after each batch) for monitoring to read."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adapters.sdk.checkpoint import write_atomically


@dataclass
class Counters:
    read: int = 0  # raw records from the source
    published: int = 0  # entities the broker accepted
    rejected: int = 0  # records and entities dead-lettered
    retried: int = 0  # broker requests sent again (down, 5xx, 429)
    batches: int = 0
    written_back: int = 0  # changes sent back to the vendor (write_back)
    started: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        elapsed = max(time.time() - self.started, 1e-9)
        return {**asdict(self), "elapsed": round(elapsed, 3),
                "read_per_second": round(self.read / elapsed, 1)}

    def line(self) -> str:
        return (f"read {self.read}, published {self.published}, rejected {self.rejected}, "
                f"retried {self.retried}")


def write_status(path: Path, adapter: str, counters: Counters, state: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, {"adapter": adapter, "state": state, "updated": time.time(),
                            **counters.as_json()})
