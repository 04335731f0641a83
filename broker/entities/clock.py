"""Broker time: UTC instants with millisecond precision, as NGSI-LD's DateTime (clause 4.6.3)."""

from __future__ import annotations

from datetime import UTC, datetime

from broker.errors import BadRequestData


def format_instant(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now_iso() -> str:
    """Now, as the broker stamps createdAt and modifiedAt."""
    return format_instant(datetime.now(UTC))


def normalize_datetime(text: object, what: str = "date-time") -> str:
    """An ISO 8601 date-time in the broker's form; a naive one is taken as UTC."""
    if not isinstance(text, str) or "T" not in text:
        raise BadRequestData(f"{what} must be an ISO 8601 date-time string, not {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequestData(f"{what} is not a valid ISO 8601 date-time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_instant(moment)
