"""Validations per stop and hour, publishable as open data. Pure.

No card, no time finer than the hour, no product, no rider category: a count of accepted
validations (passengers who boarded with a valid fare) per GTFS stop per clock hour (UTC, so a
DST change never makes two hours one). Published as Smart Data Models Transportation
`CrowdFlowObserved` entities, the SDM type for "people counted at a place over a period":
`peopleCount` over [`dateObservedFrom`, `dateObservedTo`) (`dateObserved`, which the SDM schema
requires, is that hour as an ISO 8601 interval), at the stop's `location`, the stop's GtfsStop
id in `seeAlso`; every attribute is in the upstream schema (dataModel.Transportation
CrowdFlowObserved/schema.json: GSMA-Commons, Location-Commons and its own). Its contract,
contracts/types/CrowdFlowObserved.json, classifies every attribute `none`, and the default
open-data policy lets the public read it.

An hour is counted from all of its taps at once (the simulator serves a whole hour, as a back
office's end-of-hour export would), so a recount is the same count: the upsert is idempotent
and a restart never counts a tap twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.ticketing.mapping import RESULTS, Network, urn
from adapters.ticketing.parse import Tap

TRANSPORTATION_CONTEXT = "https://smart-data-models.github.io/dataModel.Transportation/context.jsonld"
HOUR = timedelta(hours=1)
@dataclass(frozen=True)
class StopHour:
    stop_id: str
    hour: datetime  # start of the hour, UTC
    boardings: int  # passengers of accepted validations


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def count_by_stop_hour(taps: Iterable[Tap], network: Network) -> list[StopHour]:
    """Boardings per (stop, hour) of the taps at known stops, sorted; rejected taps count 0,
    and a stop-hour with only rejected taps is still reported (0 boardings)."""
    counts: Counter[tuple[str, datetime]] = Counter()
    for tap in taps:
        if tap.stop_id in network.stops:
            accepted = RESULTS.get(tap.result) == "accepted"
            counts[(tap.stop_id, hour_of(tap.at))] += tap.riders if accepted else 0
    return [StopHour(stop, hour, n) for (stop, hour), n in sorted(counts.items())]


def count_entity(count: StopHour, network: Network) -> dict[str, Any]:
    """One CrowdFlowObserved entity, normalized, with its @context."""
    feed = network.feed.id
    lon, lat = network.stops[count.stop_id]
    start, end = count.hour, count.hour + HOUR
    stamp = start.strftime("%Y-%m-%dT%HZ")

    def prop(value: Any) -> dict[str, Any]:
        return {"type": "Property", "value": value}

    return {
        "id": f"{urn('CrowdFlowObserved', feed, count.stop_id)}:{stamp}",
        "type": "CrowdFlowObserved",
        "peopleCount": prop(count.boardings),
        # SDM: an instant or an ISO 8601 interval; the hour is the interval.
        "dateObserved": prop(f"{start.isoformat()}/{end.isoformat()}"),
        "dateObservedFrom": prop(start.isoformat()),
        "dateObservedTo": prop(end.isoformat()),
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        "seeAlso": prop([urn("GtfsStop", feed, count.stop_id)]),
        "dataProvider": prop(feed),
        "@context": [TRANSPORTATION_CONTEXT],
    }


def hourly_entities(taps: Iterable[Tap], network: Network) -> list[dict[str, Any]]:
    return [count_entity(c, network) for c in count_by_stop_hour(taps, network)]
