"""The parking adapter: space sensors (MQTT), barrier car parks (HTTP) and pay-by-SMS exports
(CSV files) -> ParkingSpot, OnStreetParking, OffStreetParking, ParkingSession, with plates
and phone numbers pseudonymised. A zone's OnStreetParking carries its free and occupied
spaces once every space of it has reported, updated with each sensor event.

Config (the `[parking]` section of --config, or what the simulator serves):
    api = "http://parking.example:8082"   # car parks (/api/carparks) and zones (/api/zones)
    mqtt_host = "127.0.0.1"
    mqtt_port = 1883
    topic = "craiova/parking/+/+"          # <prefix>/<zone>/<sensor>
    client_id = "cetate-parking"           # persistent MQTT session (default: from topic;
                                           # "": a clean session each time)
    exports = "/var/spool/sms-gateway"     # the SMS gateway's export directory
    interval = 30.0                        # seconds between car park polls / export scans
    secret_file = "/etc/cetate/parking.key"  # the pseudonymisation key

Streams and what a restart does: `zones` is read again at every start (the catalogue every
other record is checked against); `sensors` resumes from the MQTT session, and since the
sensors' states are retained messages, every space's latest state comes again whatever was
in flight at a crash; `carparks` is a state poll, read again; each export file is a stream
whose checkpoint is its last published row, so no session is lost or doubled. A refused row
is dead-lettered with its phone number and plate masked (the export file keeps them).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from adapters.parking import mapping, parse
from adapters.parking.simulator import ParkingSimulator
from adapters.sdk import Adapter, BadRecord, Config, Entity, Position, Pseudonymise, Raw
from adapters.sdk.sources import BaseSource, Files, HttpPolling, MqttTopic, merged

log = logging.getLogger("cetate.adapter")

PARKING = "https://smart-data-models.github.io/dataModel.Parking/context.jsonld"
ZONES, SENSORS, CAR_PARKS = "zones", "sensors", "carparks"
API_TIMEOUT = 10.0
# What a ParkingSession is published with (Cetate's own type; the others use PARKING).
SESSION_CONTEXT = "https://cetate.city/ns/context.jsonld"


class Zones(BaseSource):
    """The on-street zone catalogue, read once at each start; it fills `known` before any
    other stream is read (see ParkingAdapter.source)."""

    def __init__(self, api: str, known: set[str], interval: float) -> None:
        self.api, self.known, self.interval = api, known, interval

    async def _get(self) -> httpx.Response:
        """The catalogue, waited for if the API is down at start (as a poll would)."""
        while True:
            try:
                async with httpx.AsyncClient(timeout=API_TIMEOUT) as http:
                    answer = await http.get(f"{self.api}/api/zones")
                answer.raise_for_status()
                return answer
            except httpx.HTTPError as exc:
                log.warning("zones of %s unavailable (%r); again in %.1f s", self.api, exc,
                            self.interval)
                await asyncio.sleep(self.interval)

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        answer = await self._get()
        try:
            items = parse.json_list(answer.content, "zones")
        except BadRecord as bad:
            yield Raw(ZONES, 0, answer.text[:10_000], bad.reason)
            return
        for n, item in enumerate(items, 1):
            if isinstance(item, dict) and isinstance(item.get("zone"), str):
                self.known.add(item["zone"])
            yield Raw(ZONES, n, item)


class ExportDirectory(BaseSource):
    """The SMS gateway's export directory, scanned every `interval` s for new files (it writes
    each whole, then renames it in); each file is a stream (adapters.sdk.sources.Files)."""

    def __init__(self, directory: Path, interval: float, scans: int | None = None) -> None:
        self.directory, self.interval, self.scans = directory, interval, scans

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        done = {k: v for k, v in checkpoint.items() if isinstance(v, int)}
        whole: dict[str, tuple[int, int]] = {}  # files read to their end: (size, mtime)
        scan = 0
        while self.scans is None or scan < self.scans:
            if scan:
                await asyncio.sleep(self.interval)
            scan += 1
            paths = sorted(self.directory.glob("*.csv")) if self.directory.is_dir() else []
            for path in paths:
                stat = path.stat()
                if whole.get(path.name) == (stat.st_size, stat.st_mtime_ns):
                    continue  # an export is never changed once renamed in: read it once
                whole[path.name] = (stat.st_size, stat.st_mtime_ns)
                async for raw in Files(path, delimiter=";").read(done):
                    done[raw.stream] = int(raw.position)
                    if raw.error:  # dead-lettered unparsed: masked here
                        parse.mask_identifiers(raw.data)
                    yield raw


class Sequenced(BaseSource):
    """`first` to its end, then `rest`: the zone catalogue before the records checked
    against it."""

    def __init__(self, first: BaseSource, rest: BaseSource) -> None:
        self.first, self.rest = first, rest

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        async for raw in self.first.read(checkpoint):
            yield raw
        async for raw in self.rest.read(checkpoint):
            yield raw

    def committed(self, checkpoint: Mapping[str, Position]) -> None:
        self.first.committed(checkpoint)
        self.rest.committed(checkpoint)


class ParkingAdapter(Adapter):
    name = "parking"
    context = PARKING  # ParkingSession entities carry Cetate's context themselves

    def __init__(self) -> None:
        self.zones: set[str] = set()
        self.zone_records: dict[str, parse.Zone] = {}
        # each space's latest event, for the zones' free-space counts; after a restart the
        # retained states bring them all back
        self.spots: dict[str, parse.SensorEvent] = {}

    def source(self, config: Config) -> Sequenced:
        api = str(config["api"]).rstrip("/")
        interval = float(config.get("interval", 30.0))
        topic = str(config["topic"])
        # a persistent MQTT session unless client_id is "" (the simulator's: no session left
        # behind on Mosquitto by demo runs; retained states cover what a restart missed)
        client_id = config.get("client_id",
                               "cetate-parking-" + hashlib.sha256(topic.encode()).hexdigest()[:12])
        sensors = MqttTopic(topic, host=str(config.get("mqtt_host", "127.0.0.1")),
                            port=int(config.get("mqtt_port", 1883)), stream=SENSORS,
                            client_id=str(client_id) or None, payload="bytes")
        car_parks = HttpPolling(f"{api}/api/carparks", stream=CAR_PARKS, items="carparks",
                                interval=interval)
        exports = ExportDirectory(Path(str(config["exports"])), interval)
        return Sequenced(Zones(api, self.zones, interval), merged(sensors, car_parks, exports))

    def parse(self, raw: Raw) -> Iterable[Any]:
        if raw.stream == ZONES:
            return [parse.parse_zone(raw.data)]
        if raw.stream == SENSORS:
            payload = raw.data["payload"]
            if payload == b"":
                return []  # a retained state being cleared: nothing to publish
            return [parse.parse_sensor_event(payload)]
        if raw.stream == CAR_PARKS:
            return [parse.parse_car_park(raw.data)]
        try:
            session = parse.parse_sms_row(raw.data, int(raw.position))
        finally:
            # read: the row's identifiers are no longer needed in clear, and a dead letter
            # (this row refused here, by the contracts or by the broker) must not hold them
            parse.mask_identifiers(raw.data)
        return [session]

    def map(self, record: Any, pseudonymise: Pseudonymise) -> Iterable[Entity]:
        if isinstance(record, parse.Zone):
            self.zone_records[record.zone] = record
            return [mapping.on_street_parking(record,
                                              mapping.zone_occupancy(record, self.spots))]
        if isinstance(record, parse.SensorEvent):
            spot = mapping.parking_spot(record, self.zones)
            last = self.spots.get(record.space)
            if last is not None and last.at > record.at:
                return []  # an older event arriving late: the newer state stands
            self.spots[record.space] = record
            zone = self.zone_records.get(record.zone)
            occupancy = mapping.zone_occupancy(zone, self.spots) if zone else None
            if zone is None or occupancy is None:
                return [spot]
            return [spot, mapping.on_street_parking(zone, occupancy)]
        if isinstance(record, parse.CarPark):
            return [mapping.off_street_parking(record)]
        session = mapping.parking_session(record, pseudonymise, self.zones)
        return [{**session, "@context": SESSION_CONTEXT}]

    def simulator(self, config: Config) -> ParkingSimulator:
        """The three systems (config: seed, host, port, mqtt_host, mqtt_port, prefix, exports,
        ticks: minutes of backlog at start, tick: seconds per minute after, sessions: SMS
        sessions per minute), busier than Craiova by default so that `run --simulate --limit
        N` and bench/adapters.py measure the adapter rather than the simulator's pace."""
        exports = config.get("exports")
        return ParkingSimulator(seed=int(config.get("seed", 7)),
                                host=str(config.get("host", "127.0.0.1")),
                                port=int(config.get("port", 0)),
                                mqtt_host=str(config.get("mqtt_host", "127.0.0.1")),
                                mqtt_port=int(config.get("mqtt_port", 1883)),
                                prefix=config.get("prefix"),
                                exports=Path(str(exports)) if exports else None,
                                ticks=int(config.get("ticks", 20)),
                                tick=float(config.get("tick", 0.25)),
                                sessions_per_tick=int(config.get("sessions", 50)))


ADAPTER = ParkingAdapter
