"""The ticketing adapter: RAT Craiova's back office (GTFS feed, tap log) -> the broker.

Config (the `ticketing` section of --config FILE; `run --simulate` fills `url` itself):

    url = "http://backoffice.ratcraiova.ro:8701"   # the back office: /gtfs/feed.zip, /taps...
    feed_id = "rat-craiova"    # in every entity id: urn:ngsi-ld:GtfsStop:rat-craiova:S03
    agency = "RATC"            # the GTFS agency_id the stops and products belong to
    streams = ["gtfs", "taps", "hours"]   # which to read (hours: the open-data aggregate)
    follow = true              # keep polling for new taps; false: stop once caught up
    feed_refresh = 86400       # seconds between two fetches of the feed (when following)
    page = 1000                # taps per request
    secret_file = "/etc/cetate/ticketing.key"   # the pseudonymisation key (card UIDs)
    tenant = ""                # NGSILD-Tenant (the SDK's key)

The hourly aggregate holds nothing about a person; to publish it apart from the validations
(an open-data tenant), run a second instance with streams = ["hours"], its own tenant and its
own state directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from adapters.sdk.errors import BadRecord, ConfigError
from adapters.sdk.hooks import CETATE_CONTEXT, Adapter, Config, Entity, Pseudonymise, Raw
from adapters.sdk.redact import mask_fields
from adapters.sdk.sources import Merged, merged
from adapters.ticketing import aggregate
from adapters.ticketing.mapping import Feed, Network, map_row, map_tap
from adapters.ticketing.parse import FeedLine, GtfsRow, Tap, parse_row, parse_tap
from adapters.ticketing.simulator import TicketingSimulator, simulator_of
from adapters.ticketing.sources import GtfsFeed, TapHours, TapLog

STREAMS = ("gtfs", "taps", "hours")


class HourTaps(list[Tap]):
    """The readable taps of one closed hour (its broken lines are dead letters of "taps")."""


class TicketingAdapter(Adapter):
    name = "ticketing"
    context = CETATE_CONTEXT  # each entity carries its own: UrbanMobility, Cetate, Transportation

    def __init__(self) -> None:
        self.network = Network()

    def _set_network(self, network: Network) -> None:
        self.network = network

    def source(self, config: Config) -> Merged:
        url = str(config.get("url", "")).rstrip("/")
        if not url:
            raise ConfigError("ticketing: no url (the back office's base URL) in the config")
        streams = tuple(config.get("streams", STREAMS))
        unknown = set(streams) - set(STREAMS)
        if unknown:
            raise ConfigError(f"ticketing: unknown streams {sorted(unknown)}; known: {STREAMS}")
        feed = Feed(str(config.get("feed_id", Feed.id)), str(config.get("agency",
                                                                       Feed.default_agency)))
        self.network = Network(feed)
        follow = bool(config.get("follow", True))
        refresh = float(config.get("feed_refresh", 86400.0)) if follow else None
        gtfs = GtfsFeed(f"{url}/gtfs/feed.zip", feed, self._set_network, refresh=refresh,
                        publish="gtfs" in streams)
        sources: list[Any] = [gtfs]
        if "taps" in streams:
            sources.append(TapLog(f"{url}/taps", gtfs.loaded, page=int(config.get("page", 1000)),
                                  follow=follow))
        if "hours" in streams:
            sources.append(TapHours(f"{url}/taps/hours", gtfs.loaded, follow=follow))
        return merged(*sources)

    def redact(self, raw: Raw) -> Any:
        """A refused tap keeps no card UID (nor its bank-card token) in the dead letter."""
        return mask_fields(raw.data, {"card_uid"})

    def parse(self, raw: Raw) -> Iterable[Any]:
        if raw.stream.startswith("gtfs@"):
            return [parse_row(FeedLine.from_json(raw.data))]
        if raw.stream == "taps":
            return [parse_tap(raw.data)]
        if raw.stream == "hours":
            taps = HourTaps()
            for line in raw.data.get("taps", ()):
                try:
                    taps.append(parse_tap(line))
                except BadRecord:
                    continue
            return [taps]
        raise BadRecord(f"no stream {raw.stream!r} in the ticketing adapter")

    def map(self, record: Any, pseudonymise: Pseudonymise) -> Iterable[Entity]:
        if isinstance(record, GtfsRow):
            return [map_row(record, self.network.feed)]
        if isinstance(record, Tap):
            return map_tap(record, self.network, pseudonymise)
        if isinstance(record, HourTaps):
            return aggregate.hourly_entities(record, self.network)
        raise BadRecord(f"not a ticketing record: {type(record).__name__}")

    def simulator(self, config: Config) -> TicketingSimulator:
        return _Simulated(simulator_of(config))


class _Simulated(TicketingSimulator):
    """The simulator as `run --simulate` uses it: its log is complete, so stop at its end."""

    def __init__(self, inner: TicketingSimulator) -> None:
        super().__init__(inner.system, port=inner.port, live=inner.live, host=inner.host)

    async def start(self) -> Config:
        return {**await super().start(), "follow": bool(self.live)}


ADAPTER = TicketingAdapter
