"""A complete small adapter, the one docs/vendors.md walks through (its tests run it, so the
guide cannot rot): a city fleet tracker's REST API -> Vehicle entities.

The vendor: GET /api/positions?after=SEQ answers {"positions": [...]}, the GPS fixes after
sequence number SEQ, oldest first: {"seq", "truck", "plate", "lat", "lon", "speed_kmh",
"status", "at"}. The simulator serves a seeded, endless stream of them for the sanitation
trucks of Craiova; with bad_every=K every K-th fix is broken (no position, or an impossible
speed), as real trackers sometimes send.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from adapters.sdk import Adapter, BadRecord, Config, Entity, Pseudonymise, Raw
from adapters.sdk.sources import HttpPolling

SDM_TRANSPORTATION = "https://smart-data-models.github.io/dataModel.Transportation/context.jsonld"
STATUSES = {"route": "onRoute", "depot": "parked", "fault": "broken", "off": "outOfService"}
# (street, lat, lon) where the simulated trucks work
STREETS = [("Calea Unirii", 44.3190, 23.7965), ("Bulevardul Nicolae Titulescu", 44.3262, 23.7954),
           ("Strada Mihai Viteazu", 44.3172, 23.8003), ("Calea București", 44.3225, 23.8215),
           ("Bulevardul Carol I", 44.3268, 23.8039)]
PAGE = 100  # fixes per answer of the simulated API


class FleetSimulator:
    """The tracker's API on 127.0.0.1 (config: port, seed, trucks, bad_every)."""

    def __init__(self, config: Config) -> None:
        self.port = int(config.get("port", 0))
        self.seed = int(config.get("seed", 7))
        self.trucks = int(config.get("trucks", 12))
        self.bad_every = int(config.get("bad_every", 0))
        self.runner: web.AppRunner | None = None

    def fix(self, seq: int) -> dict[str, Any]:
        """Fix number `seq` (1, 2, ...): the same for a given seed, whoever asks, whenever."""
        rand = random.Random(self.seed * 1_000_003 + seq)
        truck = seq % self.trucks + 1
        street, lat, lon = STREETS[truck % len(STREETS)]
        fix: dict[str, Any] = {
            "seq": seq, "truck": f"SAL-{truck:03d}", "plate": f"DJ {truck:02d} SAL",
            "lat": round(lat + rand.uniform(-0.004, 0.004), 6),
            "lon": round(lon + rand.uniform(-0.004, 0.004), 6),
            "speed_kmh": round(rand.uniform(0, 45), 1), "street": street,
            "status": rand.choice(["route", "route", "route", "depot", "off"]),
            "at": (datetime(2026, 11, 23, 6, tzinfo=UTC) + timedelta(seconds=seq))
            .isoformat().replace("+00:00", "Z")}
        if self.bad_every and seq % self.bad_every == 0:
            if seq // self.bad_every % 2:
                del fix["lat"]  # no position: parse refuses it
            else:
                fix["speed_kmh"] = -40.0  # impossible: the Vehicle contract refuses it
        return fix

    async def positions(self, request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        return web.json_response({"positions": [self.fix(s)
                                                for s in range(after + 1, after + PAGE + 1)]})

    async def start(self) -> Config:
        app = web.Application()
        app.router.add_get("/api/positions", self.positions)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        port = self.runner.addresses[0][1]
        return {"url": f"http://127.0.0.1:{port}/api/positions"}

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class FleetAdapter(Adapter):
    name = "example"
    context = SDM_TRANSPORTATION

    def source(self, config: Config) -> HttpPolling:
        # The API takes a cursor: a restarted adapter asks for the fixes after its checkpoint.
        return HttpPolling(config["url"], stream="positions", items="positions",
                           cursor_param="after", position_field="seq",
                           interval=float(config.get("interval", 1.0)))

    def parse(self, raw: Raw) -> Iterable[dict[str, Any]]:
        fix = raw.data
        missing = [k for k in ("truck", "plate", "lat", "lon", "at") if k not in fix]
        if missing:
            raise BadRecord(f"fix {fix.get('seq')} lacks {', '.join(missing)}")
        return [fix]

    def map(self, record: dict[str, Any], pseudonymise: Pseudonymise) -> Iterable[Entity]:
        plate = record["plate"].replace(" ", "").upper()  # one spelling, one pseudonym
        yield {
            "id": f"urn:ngsi-ld:Vehicle:craiova-salubritate-{record['truck']}",
            "type": "Vehicle",
            "vehicleType": {"type": "Property", "value": "lorry"},
            "category": {"type": "Property", "value": ["municipalServices", "tracked"]},
            "fleetVehicleId": {"type": "Property", "value": record["truck"]},
            "vehiclePlateIdentifier": {"type": "Property",
                                       "value": pseudonymise("plate", plate)},
            "location": {"type": "GeoProperty", "value": {
                "type": "Point", "coordinates": [record["lon"], record["lat"]]}},
            "speed": {"type": "Property", "value": record["speed_kmh"], "unitCode": "KMH"},
            "serviceStatus": {"type": "Property",
                              "value": STATUSES.get(record["status"], "outOfService")},
            "observationDateTime": {"type": "Property", "value": record["at"]},
        }

    def simulator(self, config: Config) -> FleetSimulator:
        return FleetSimulator(config)


ADAPTER = FleetAdapter
