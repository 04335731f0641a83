"""Retention (GDPR art. 5(1)(e), storage limitation): from a type's retention period to the
instant before which its entities are expired. Pure: the caller passes `now`.

An entity is expired when its last change (`modifiedAt`, else `createdAt`) is older than the
cutoff: an entity still being updated is still in use, whatever its age. A temporal history
instance is expired by its `observedAt` (when the fact happened), else its `modifiedAt` or
`createdAt` (when it was recorded). Something with none of these is never expired by this
module (the store always sets them).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# ISO 8601-1:2019 §5.5.2.4 durations, the designators PnYnMnWnDTnHnMnS (each optional, at
# least one; the week form may be mixed with others, as ISO 8601-2 and XML Schema allow).
_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?")
MAX_YEARS = 1000  # no records schedule keeps anything longer; bounds datetime arithmetic


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    days: int = 0  # weeks folded in
    seconds: float = 0.0


def parse_duration(text: str) -> Duration:
    """An ISO 8601 duration; ValueError if it is not one (or is empty, as `P` or `PT`)."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or not any(m.groupdict().values()) or text.strip().endswith("T"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    years = int(g.get("years", 0))
    if years > MAX_YEARS:
        raise ValueError(f"retention of more than {MAX_YEARS} years: {text!r}")
    return Duration(years=years, months=int(g.get("months", 0)),
                    days=int(g.get("days", 0)) + 7 * int(g.get("weeks", 0)),
                    seconds=int(g.get("hours", 0)) * 3600 + int(g.get("minutes", 0)) * 60
                    + float(g.get("seconds", "0").replace(",", ".")))


def _minus_months(when: datetime, months: int) -> datetime:
    # Calendar months: 31 March minus one month is 28/29 February (the day is clamped).
    index = when.year * 12 + when.month - 1 - months
    year, month = divmod(index, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


def cutoff(retention: str, now: datetime) -> datetime:
    """The instant before which data kept for `retention` is expired, as of `now`."""
    d = parse_duration(retention)
    when = _minus_months(now, d.years * 12 + d.months)
    return when - timedelta(days=d.days, seconds=d.seconds)


def parse_instant(text: str) -> datetime:
    """An NGSI-LD date-time (UTC with Z, or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _instant(item: Mapping[str, Any], members: tuple[str, ...]) -> datetime | None:
    for member in members:
        value = item.get(member)
        if isinstance(value, str):
            try:
                return parse_instant(value)
            except ValueError:
                continue
    return None


def entity_expired(entity: Mapping[str, Any], cut: datetime) -> bool:
    """Whether an entity (internal form) was last changed before the cutoff."""
    when = _instant(entity, ("modifiedAt", "createdAt"))
    return when is not None and when < cut


def instance_expired(instance: Mapping[str, Any], cut: datetime) -> bool:
    """Whether a temporal history instance is older than the cutoff."""
    when = _instant(instance, ("observedAt", "modifiedAt", "createdAt"))
    return when is not None and when < cut


def cutoffs(retentions: Mapping[str, str], now: datetime) -> dict[str, datetime]:
    """The cutoff of each type (e.g. {type IRI: contract.retention}), as of `now`: what a purge
    job deletes before, type by type."""
    return {type_iri: cutoff(retention, now) for type_iri, retention in retentions.items()}
