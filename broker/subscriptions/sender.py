"""What a sender gives back, and what the dispatcher needs of one (the delivery edges)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from broker.subscriptions.notification import Outgoing


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # a transient failure: try again later (backoff.py)
    FAILED = "failed"  # a permanent failure: retrying cannot help (a 4xx, a refused address)


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str = ""
    status: int | None = None  # the HTTP status, when there was one
    retry_after: float | None = None  # seconds the receiver asked us to wait (Retry-After)


class Sender(Protocol):
    """One transport (HTTP, MQTT). `send` never raises for a delivery problem: it reports it."""

    async def send(self, out: Outgoing) -> Result:
        """Deliver one notification once, within its timeout."""
        ...

    async def aclose(self) -> None:
        """Close every connection."""
        ...
