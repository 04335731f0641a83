"""A simulator of Craiova's parking systems, seeded (a seed always gives the same city):

- space sensors publishing occupied/free events to a real MQTT broker (Mosquitto,
  127.0.0.1:1883), topic `<prefix>/<zone>/<sensor>`, QoS 1, retained (the last state of each
  space, as the vendor's network server keeps it);
- the barrier car parks' HTTP API (aiohttp, a real port): `GET /api/carparks`, and the
  on-street zone catalogue `GET /api/zones`;
- the pay-by-SMS gateway's export: a CSV file per tick in a directory
  (`sms-sessions-YYYYMMDD-HHMM.csv`, `;`-separated, decimal commas, local time).

    python -m adapters.parking.simulator --seed 7 --port 8082 --exports /tmp/sms

Test hooks (not the vendors' APIs): `POST /sim/tick?n=N` advances N minutes (spaces change,
cars come and go, SMS sessions start; one export file); `POST /sim/inject {"kind", "count"}`
produces bad data on demand: `sensor-truncated` (a cut JSON payload), `sensor-impossible` (a
space outside Craiova), `sensor-unknown-zone`, `carpark-impossible` (more spaces free than
the car park has, in the next answer), `sms-truncated` (an export cut mid-row),
`sms-encoding` (an export in Windows-1250 with cedilla diacritics), `sms-impossible` (a
negative amount, a 3-day session), `sms-unknown-zone`. `GET /sim/truth` gives what the
simulator produced, for tests to compare with the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
from aiohttp import web

from adapters.parking.parse import SMS_COLUMNS

LOCAL_TIME = ZoneInfo("Europe/Bucharest")
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # 10:00 in Craiova, a working day

# zone, name, street, (lat, lon) start, (lat, lon) end, spaces, lei/hour, max minutes
ZONES: tuple[tuple[str, str, str, tuple[float, float], tuple[float, float], int, str, int],
             ...] = (
    ("A1", "Centru", "Calea Unirii", (44.3165, 23.7978), (44.3225, 23.7950), 24, "3", 120),
    ("A2", "Piața Mihai Viteazu", "Strada Mihai Viteazu", (44.3188, 23.7925),
     (44.3198, 23.7980), 20, "3", 120),
    ("B1", "Titulescu", "Bulevardul Nicolae Titulescu", (44.3228, 23.7880),
     (44.3232, 23.8040), 30, "2", 180),
    ("B2", "Gară", "Bulevardul Carol I", (44.3245, 23.7958), (44.3298, 23.7936), 26, "2", 180),
    ("C1", "București", "Calea București", (44.3188, 23.8010), (44.3205, 23.8200), 20, "1.5",
     240),
)
# id, name, address, lat, lon, capacity, lei/hour
CAR_PARKS: tuple[tuple[str, str, str, float, float, int, str], ...] = (
    ("P-ELECTROPUTERE", "Parcare Electroputere Parc", "Calea București 80", 44.3226, 23.8290,
     1200, "2"),
    ("P-PIATA-CENTRALA", "Parcarea Piața Centrală", "Strada Ioan Maiorescu 2", 44.3166,
     23.7992, 320, "3"),
    ("P-PROMENADA", "Parcare Promenada Mall", "Calea Severinului 5A", 44.3254, 23.7792, 1500,
     "0"),
    ("P-TEATRU", "Parcarea subterană Teatrul Național", "Strada Alexandru Ioan Cuza 11",
     44.3190, 23.7961, 200, "4"),
)
COUNTY_PLATES = ("DJ", "DJ", "DJ", "DJ", "OT", "MH", "GJ", "VL", "B")
PLATE_STYLES = ("{c} {n} {l}", "{c}-{n}-{l}", "{c}{n}{l}", "{cl} {n} {ll}")
PHONE_STYLES = ("07{d}", "+407{d}", "07{a} {b} {c}", "00407{d}")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Parking:
    """The state of all three systems, and the outputs of each tick (pure: no I/O)."""

    seed: int = 7
    prefix: str = "craiova/parking"
    sessions_per_tick: int = 6
    rng: random.Random = field(init=False)
    clock: datetime = START
    spaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    car_parks: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: list[dict[str, str]] = field(default_factory=list)
    ends: dict[str, datetime] = field(default_factory=dict)  # session id -> end of paid time
    spoil_car_parks: int = 0
    sensor_seq: int = 0
    session_seq: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        n = 0
        for zone, _, street, (lat0, lon0), (lat1, lon1), count, _, _ in ZONES:
            for i in range(count):
                n += 1
                t = i / max(1, count - 1)
                space = f"{zone}-{i + 1:03d}"
                self.spaces[space] = {
                    "sensor": f"PS-{n:05d}", "space": space, "zone": zone, "street": street,
                    "lat": round(lat0 + (lat1 - lat0) * t, 6),
                    "lon": round(lon0 + (lon1 - lon0) * t, 6),
                    "event": self.rng.choice(("OCCUPIED", "OCCUPIED", "FREE")),
                    "battery": round(self.rng.uniform(3.3, 3.65), 2), "ts": _iso(self.clock)}
        for cid, name, address, lat, lon, capacity, tariff in CAR_PARKS:
            self.car_parks[cid] = {
                "id": cid, "name": name, "address": address, "lat": lat, "lon": lon,
                "capacity": capacity, "free": self.rng.randint(capacity // 10, capacity // 2),
                "status": "OPEN", "tariffRonPerHour": float(tariff), "updated": _iso(self.clock)}

    # -- sensors -----------------------------------------------------------------------------

    def topic(self, space: dict[str, Any]) -> str:
        return f"{self.prefix}/{space['zone']}/{space['sensor']}"

    def event(self, space: dict[str, Any]) -> bytes:
        self.sensor_seq += 1
        return json.dumps({**space, "seq": self.sensor_seq}, ensure_ascii=False).encode()

    def all_events(self) -> list[tuple[str, bytes]]:
        """The current state of every space, as the sensors last reported it."""
        return [(self.topic(s), self.event(s)) for _, s in sorted(self.spaces.items())]

    # -- time passing ------------------------------------------------------------------------

    def tick(self, minutes: int = 1) -> tuple[list[tuple[str, bytes]], list[dict[str, str]]]:
        """Advance; (sensor events to publish, SMS export rows: sessions started or ended) of
        these minutes."""
        events: list[tuple[str, bytes]] = []
        rows: list[dict[str, str]] = []
        for _ in range(minutes):
            self.clock += timedelta(minutes=1)
            for key in self.rng.sample(sorted(self.spaces), 4):
                space = self.spaces[key]
                space["event"] = "FREE" if space["event"] == "OCCUPIED" else "OCCUPIED"
                space["ts"] = _iso(self.clock)
                events.append((self.topic(space), self.event(space)))
            for park in self.car_parks.values():
                park["free"] = max(0, min(park["capacity"],
                                          park["free"] + self.rng.randint(-12, 12)))
                park["status"] = "FULL" if park["free"] == 0 else "OPEN"
                park["updated"] = _iso(self.clock)
            started = [self.new_session() for _ in range(self.sessions_per_tick)]
            self.sessions.extend(started)
            rows.extend(dict(s) for s in started)  # as exported now, whatever comes later
            rows.extend(self._ended())
        return events, rows

    def _ended(self) -> list[dict[str, str]]:
        """Sessions whose paid time ran out this minute, exported again as ended (INCHEIAT):
        the same session id, so the broker's entity is updated, not doubled."""
        ended = []
        for session in self.sessions:
            if session["status"] == "ACTIV" and self.ends[session["id"]] <= self.clock:
                session["status"] = "INCHEIAT"
                ended.append(dict(session))
        return ended

    def new_session(self) -> dict[str, str]:
        """A pay-by-SMS session starting now (an export row)."""
        self.session_seq += 1
        zone, _, street, _, _, _, tariff, max_minutes = self.rng.choice(ZONES)
        minutes = self.rng.choice((30, 60, 60, 120, max_minutes))
        minutes = min(minutes, max_minutes)
        amount = float(tariff) * minutes / 60
        start = (self.clock - timedelta(seconds=self.rng.randint(0, 59))).astimezone(LOCAL_TIME)
        digits = f"{self.rng.randint(0, 99_999_999):08d}"
        letters = "".join(self.rng.choice("ABCDEFGHIJKLMNPRSTUVWXYZ") for _ in range(3))
        county = self.rng.choice(COUNTY_PLATES)
        number = f"{self.rng.randint(1, 99):02d}" if county != "B" else \
            f"{self.rng.randint(1, 999):03d}"
        plate = self.rng.choice(PLATE_STYLES).format(c=county, n=number, l=letters,
                                                     cl=county.lower(), ll=letters.lower())
        phone = self.rng.choice(PHONE_STYLES).format(d=digits, a=digits[:2], b=digits[2:5],
                                                     c=digits[5:])
        session_id = f"SMS-{self.clock:%Y%m%d}-{self.session_seq:06d}"
        self.ends[session_id] = start.astimezone(UTC) + timedelta(minutes=minutes)
        return {"id": session_id, "msisdn": phone,
                "plate": plate, "zone": zone, "street": street,
                "start": start.strftime("%Y-%m-%d %H:%M:%S"), "duration_min": str(minutes),
                "amount_ron": f"{amount:.2f}".replace(".", ","), "status": "ACTIV"}

    # -- car parks ---------------------------------------------------------------------------

    def car_park_answer(self) -> dict[str, Any]:
        parks = [dict(self.car_parks[k]) for k in sorted(self.car_parks)]
        if self.spoil_car_parks:
            self.spoil_car_parks -= 1
            parks[0]["free"] = parks[0]["capacity"] + 50
        return {"updated": _iso(self.clock), "carparks": parks}

    def zones_answer(self) -> dict[str, Any]:
        return {"zones": [
            {"zone": z, "name": name, "street": street, "lat": (a[0] + b[0]) / 2,
             "lon": (a[1] + b[1]) / 2, "spaces": count, "tariffRonPerHour": float(tariff),
             "maxMinutes": max_minutes,
             "spaceIds": sorted(k for k, s in self.spaces.items() if s["zone"] == z)}
            for z, name, street, a, b, count, tariff, max_minutes in ZONES]}

    def truth(self) -> dict[str, Any]:
        return {"spots": {k: s["event"] for k, s in self.spaces.items()},
                "carparks": {k: p["free"] for k, p in self.car_parks.items()},
                "sessions": [s["id"] for s in self.sessions],
                "ended": sorted(s["id"] for s in self.sessions if s["status"] == "INCHEIAT")}


def csv_text(rows: list[dict[str, str]]) -> str:
    lines = [";".join(SMS_COLUMNS)] + [";".join(r[c] for c in SMS_COLUMNS) for r in rows]
    return "\r\n".join(lines) + "\r\n"


def write_export(directory: Path, name: str, content: bytes) -> Path:
    """An export file, whole or not at all (the gateway writes then renames)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".part")
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(temporary, path)
    return path


class ParkingSimulator:
    """The three systems running: MQTT publisher, HTTP API, export directory
    (adapters.sdk.Simulator)."""

    def __init__(self, *, seed: int = 7, host: str = "127.0.0.1", port: int = 0,
                 mqtt_host: str = "127.0.0.1", mqtt_port: int = 1883,
                 prefix: str | None = None, exports: Path | None = None,
                 ticks: int = 0, tick: float = 0.0, sessions_per_tick: int = 6) -> None:
        # a prefix per run, so two simulators on one Mosquitto never mix their spaces
        self.state = Parking(seed=seed, prefix=prefix or f"craiova/parking/sim{os.getpid()}"
                             f"-{random.randrange(1 << 30)}", sessions_per_tick=sessions_per_tick)
        self.host, self.port = host, port
        self.mqtt_host, self.mqtt_port = mqtt_host, mqtt_port
        self.own_exports = exports is None  # a temporary directory, removed at stop
        self.exports = exports or Path(tempfile.mkdtemp(prefix="cetate-sms-"))
        self.ticks = ticks  # exports written at start, before any adapter reads
        self.tick_every = tick  # > 0: the city moves on one minute every `tick` seconds
        self._clock: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one tick or injection at a time
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._mqtt: aiomqtt.Client | None = None
        self._files = 0

    async def start(self) -> dict[str, Any]:
        self._mqtt = aiomqtt.Client(self.mqtt_host, self.mqtt_port)
        await self._mqtt.__aenter__()
        await self._publish(self.state.all_events())
        for _ in range(self.ticks):
            await self.tick()
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.url = f"http://{self.host}:{self._runner.addresses[0][1]}"
        if self.tick_every > 0:
            self._clock = asyncio.create_task(self._advance())
        return self.config()

    async def _advance(self) -> None:
        while True:
            await asyncio.sleep(self.tick_every)
            await self.tick()

    def config(self) -> dict[str, Any]:
        return {"api": self.url, "mqtt_host": self.mqtt_host, "mqtt_port": self.mqtt_port,
                "topic": f"{self.state.prefix}/+/+", "exports": str(self.exports),
                "interval": 1.0, "client_id": ""}

    async def stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._mqtt is not None:
            await self.clear_retained()
            await self._mqtt.__aexit__(None, None, None)
            self._mqtt = None
        if self.own_exports:
            shutil.rmtree(self.exports, ignore_errors=True)

    async def clear_retained(self) -> None:
        """Remove the retained states (an empty retained message deletes one), so Mosquitto
        does not keep a stopped simulator's spaces."""
        assert self._mqtt is not None
        for key in sorted(self.state.spaces):
            await self._mqtt.publish(self.state.topic(self.state.spaces[key]), b"", qos=1,
                                     retain=True)

    async def _publish(self, events: list[tuple[str, bytes]], *, retain: bool = True) -> None:
        assert self._mqtt is not None
        for topic, payload in events:
            await self._mqtt.publish(topic, payload, qos=1, retain=retain)

    def _export(self, rows: list[dict[str, str]], content: bytes | None = None) -> Path:
        self._files += 1
        name = f"sms-sessions-{self.state.clock:%Y%m%d-%H%M}-{self._files:04d}.csv"
        return write_export(self.exports, name, content or csv_text(rows).encode("utf-8"))

    async def tick(self, minutes: int = 1) -> None:
        async with self._lock:
            events, sessions = self.state.tick(minutes)
            await self._publish(events)
            self._export(sessions)

    async def inject(self, kind: str, count: int = 1) -> None:
        async with self._lock:
            await self._inject_unlocked(kind, count)

    async def _inject_unlocked(self, kind: str, count: int) -> None:
        state = self.state
        if kind == "carpark-impossible":
            state.spoil_car_parks += count
            return
        if kind.startswith("sensor-"):
            space = dict(state.spaces[min(state.spaces)])
            events = []
            for n in range(count):
                bad = {**space, "sensor": f"PS-BAD-{n + 1}", "space": f"BAD-{n + 1:03d}"}
                if kind == "sensor-impossible":
                    bad["lat"] = 4.43
                elif kind == "sensor-unknown-zone":
                    bad["zone"] = "Z9"
                elif kind != "sensor-truncated":
                    raise ValueError(f"unknown kind {kind!r}")
                payload = json.dumps({**bad, "seq": 0}).encode()
                if kind == "sensor-truncated":
                    payload = payload[: len(payload) // 2]
                events.append((f"{state.prefix}/{bad['zone']}/{bad['sensor']}", payload))
            await self._publish(events, retain=False)
            return
        good = [state.new_session() for _ in range(2)]
        bad_rows = [state.new_session() for _ in range(count)]
        if kind == "sms-impossible":
            for n, row in enumerate(bad_rows):
                if n % 2 == 0:
                    row["amount_ron"] = "-5,00"
                else:
                    row["duration_min"] = "4320"  # three days: the gateway sells one at most
        elif kind == "sms-unknown-zone":
            for row in bad_rows:
                row["zone"] = "Z9"
        elif kind == "sms-encoding":
            for row in good:  # streets without diacritics: these rows survive the encoding
                row.update(zone="A1", street="Calea Unirii")
            for row in bad_rows:  # a Windows-1250 export: the street names break UTF-8
                row["street"] = "Strada Ştefan cel Mare, Piaţa Veche"
            text = csv_text(good + bad_rows).replace("ș", "ş").replace("ț", "ţ")
            state.sessions.extend(good)
            self._export([], text.encode("cp1250"))
            return
        elif kind == "sms-truncated":
            state.sessions.extend(good)
            content = csv_text(good + bad_rows).encode("utf-8")
            cut = content.rfind(b";", 0, len(content) - 10)  # mid-row: the last field is lost
            self._export([], content[:cut])
            return
        else:
            raise ValueError(f"unknown kind {kind!r}")
        state.sessions.extend(good)
        self._export(good + bad_rows)

    # -- HTTP --------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/carparks", self._car_parks)
        app.router.add_get("/api/zones", self._zones)
        app.router.add_post("/sim/tick", self._tick)
        app.router.add_post("/sim/inject", self._inject)
        app.router.add_get("/sim/truth", self._truth)
        return app

    async def _car_parks(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.car_park_answer())

    async def _zones(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.zones_answer())

    async def _truth(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.truth())

    async def _tick(self, request: web.Request) -> web.Response:
        await self.tick(int(request.query.get("n", "1")))
        return web.json_response({"clock": _iso(self.state.clock)})

    async def _inject(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            await self.inject(str(body.get("kind")), int(body.get("count", 1)))
        except ValueError as exc:
            raise web.HTTPUnprocessableEntity(text=str(exc)) from None
        return web.json_response({"ok": True})


async def _serve(args: argparse.Namespace) -> None:
    sim = ParkingSimulator(seed=args.seed, port=args.port, prefix=args.prefix,
                           exports=Path(args.exports) if args.exports else None,
                           mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port, ticks=1,
                           tick=args.interval)
    config = await sim.start()
    print(json.dumps(config), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Craiova parking systems simulator")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--prefix", default="craiova/parking")
    parser.add_argument("--exports", default=None, help="directory of the SMS exports")
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per tick")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
