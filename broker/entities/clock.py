"""Broker time: UTC instants with millisecond precision, as NGSI-LD's DateTime (clause 4.6.3)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from broker.errors import BadRequestData

# ISO 8601 extended date-time: seconds and fraction optional, a "," may stand for the "."
# (clause 4.6.3 allows it in requests), a zone of Z or +hh:mm (a missing zone is read as UTC).
# Digits are ASCII only: Python's \d also takes other scripts' digits.
_DATETIME_RE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
    r"T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})"
    r"(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]{1,9}))?)?"
    r"(?P<z>Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
MAX_OFFSET_HOURS = 23  # a zone offset is below a day (ISO 8601); larger ones are garbage


def format_instant(moment: datetime) -> str:
    """`moment` as YYYY-MM-DDTHH:MM:SS.mmmZ in UTC (milliseconds truncated)."""
    utc = moment.astimezone(UTC)
    return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
            f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z")


def now_iso() -> str:
    """Now, as the broker stamps createdAt and modifiedAt."""
    return format_instant(datetime.now(UTC))


def _zone(text: str | None) -> timezone:
    if text is None or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > MAX_OFFSET_HOURS or minutes > 59:
        raise ValueError("zone offset out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def normalize_datetime(text: object, what: str = "date-time") -> str:
    """An ISO 8601 date-time in the broker's form; BadRequestData if it is not one."""
    match = _DATETIME_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise BadRequestData(f"{what} must be an ISO 8601 date-time "
                             f"(YYYY-MM-DDThh:mm:ssZ), not {text!r}")
    g = match.groupdict()
    micro = int((g["f"] or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(int(g["y"]), int(g["mo"]), int(g["d"]), int(g["h"]), int(g["mi"]),
                          int(g["s"] or 0), micro, tzinfo=_zone(g["z"]))
        return format_instant(moment)
    except (ValueError, OverflowError):  # 2026-13-01, 25:00, an offset past year 1 or 9999
        raise BadRequestData(f"{what} is not a valid date-time: {text!r}") from None
