"""A simulated ticketing back office of RAT Craiova (the city's transport operator), over HTTP.

    GET /gtfs/feed.zip              the GTFS static feed (agency, stops, routes, trips,
                                    calendar, stop_times, fare_media, fare_products)
    GET /taps?after=SEQ&limit=N     the validator tap log, JSON lines, from SEQ+1 on (the log
                                    has no gaps: line i is tap SEQ+i); Content-Type
                                    application/x-ndjson; X-Log-Head: the last seq logged
    GET /taps/hours?after=EPOCH     the closed hours (UTC) after EPOCH, each with all its taps:
                                    [{"hour": EPOCH, "start": ISO, "taps": [line, ...]}]

Deterministic with `seed`: tap `seq` is drawn from Random(f"{seed}:{seq}"), so any part of the
log can be served again identically (a restarted adapter reads the same taps). Taps are spread
`interval` simulated seconds apart from `start`, `taps` of them; with `live` the log grows by
one tap per `live` real seconds instead.

Bad data on demand (`bad`, a set of kinds, each hitting every `bad_every`-th item):
truncated-feed (the zip cut short), latin1-stops (a stops.txt line in Windows-1250, not UTF-8),
short-row (a routes.txt line cut short), bad-coordinates (a stop at latitude 144.3),
unknown-stop (a tap at stop "S99"), broken-json (a tap line cut mid-object), unknown-product.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import random
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from adapters.sdk.hooks import Config
from adapters.ticketing.parse import LOCAL_TIME

BAD_KINDS = frozenset({"truncated-feed", "latin1-stops", "short-row", "bad-coordinates",
                       "unknown-stop", "broken-json", "unknown-product"})
MAX_PAGE = 5000  # taps in one /taps answer

AGENCY = {"agency_id": "RATC", "agency_name": "Regia Autonomă de Transport Craiova",
          "agency_url": "https://www.ratcraiova.ro", "agency_timezone": "Europe/Bucharest",
          "agency_lang": "ro", "agency_phone": "+40251411000"}

# (stop_id, name, lat, lon, zone): stops on Craiova's real streets, at their coordinates.
STOPS: tuple[tuple[str, str, float, float, str], ...] = (
    ("S01", "Gara Craiova (Bulevardul Carol I)", 44.32960, 23.81050, "A"),
    ("S02", "Bulevardul Carol I / Piaţa Chiriac", 44.32500, 23.80420, "A"),
    ("S03", "Piaţa Mihai Viteazu", 44.31930, 23.79670, "A"),
    ("S04", "Calea Unirii", 44.31900, 23.79650, "A"),
    ("S05", "Strada Mihai Viteazu", 44.32110, 23.79580, "A"),
    ("S06", "Universitatea (Strada Alexandru Ioan Cuza)", 44.31790, 23.79940, "A"),
    ("S07", "Bulevardul Nicolae Titulescu / Spitalul Judeţean", 44.32010, 23.78700, "A"),
    ("S08", "Rotonda (Bulevardul Nicolae Titulescu)", 44.32320, 23.78030, "A"),
    ("S09", "Craioviţa Nouă", 44.32500, 23.75300, "B"),
    ("S10", "Parcul Nicolae Romanescu", 44.30050, 23.80100, "A"),
    ("S11", "Calea Bucureşti / Piaţa Valea Roşie", 44.32280, 23.82200, "A"),
    ("S12", "Calea Bucureşti / Electroputere", 44.32860, 23.83640, "B"),
    ("S13", "Brazda lui Novac", 44.33300, 23.77000, "B"),
    ("S14", "Piaţa Centrală", 44.32150, 23.80100, "A"),
)

# (route_id, short name, long name, GTFS route_type, colour, stop sequence)
ROUTES: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...] = (
    ("1", "1", "Craioviţa Nouă - Electroputere", "0", "E30613",
     ("S09", "S08", "S07", "S05", "S03", "S14", "S11", "S12")),
    ("E1", "E1", "Gara Craiova - Parcul Nicolae Romanescu", "3", "0069B4",
     ("S01", "S02", "S14", "S03", "S04", "S06", "S10")),
    ("9", "9", "Brazda lui Novac - Piaţa Valea Roşie", "3", "009640",
     ("S13", "S08", "S07", "S05", "S03", "S14", "S11")),
    ("24", "24", "Craioviţa Nouă - Gara Craiova", "3", "F39200",
     ("S09", "S08", "S05", "S02", "S01")),
)
SERVICE = "LV"  # luni-vineri (weekdays)
TRIPS_PER_DIRECTION = 6

# (fare_product_id, name, fare_media_id, amount, rider_category_id, product_kind, validity)
FARE_MEDIA = (("paper", "Bilet hârtie", "1"), ("card", "Card RAT Craiova", "2"),
              ("emv", "Card bancar contactless", "3"), ("app", "Aplicaţia RATC", "4"))
FARE_PRODUCTS: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    ("BILET-1C", "Bilet o călătorie", "paper", "3.00", "adult", "singleRide", "PT60M"),
    ("CARD-1C", "Călătorie cu cardul", "card", "2.50", "adult", "storedValue", "PT60M"),
    ("EMV-1C", "Călătorie contactless", "emv", "3.00", "adult", "singleRide", "PT60M"),
    ("ABON-ZI", "Abonament o zi", "card", "10.00", "adult", "dayPass", "P1D"),
    ("ABON-LUNA", "Abonament lunar", "card", "90.00", "adult", "monthPass", "P1M"),
    ("ABON-ELEV", "Abonament elevi", "card", "0.00", "elev", "monthPass", "P1M"),
    ("ABON-PENS", "Abonament pensionari", "card", "0.00", "pensionar", "monthPass", "P1M"),
)
# media of a card -> the products it may carry, with weights
CARD_PRODUCTS = {"card": (("CARD-1C", 5), ("ABON-LUNA", 4), ("ABON-ZI", 1), ("ABON-ELEV", 2),
                          ("ABON-PENS", 2)),
                 "bank": (("EMV-1C", 1),), "qr": (("BILET-1C", 1),)}
REJECTIONS = (("NO_PRODUCT", 4), ("LOW_BALANCE", 3), ("PASSBACK", 2), ("BLOCKED", 1),
              ("EXPIRED", 1), ("READ_ERROR", 1))


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


@dataclass
class TicketingSystem:
    """The back office's data, pure and deterministic; `TicketingSimulator` serves it."""

    seed: int = 7
    taps: int = 2000
    interval: float = 3.0  # simulated seconds between two taps
    start: datetime = datetime(2026, 12, 1, 5, 0, tzinfo=LOCAL_TIME)
    cards: int = 400
    bad: frozenset[str] = frozenset()
    bad_every: int = 50
    _pool: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.bad) - BAD_KINDS
        if unknown:
            raise ValueError(f"unknown bad-data kinds: {', '.join(sorted(unknown))}")
        rng = random.Random(f"{self.seed}:cards")
        for _ in range(self.cards):
            media = rng.choices(("card", "bank", "qr"), (8, 3, 1))[0]
            uid = rng.randbytes(7).hex().upper() if media != "qr" else \
                f"QR{rng.randrange(10**9):09d}"
            self._pool.append((uid, media))

    # -- the GTFS feed --

    def trips(self) -> list[tuple[str, str, int, str]]:
        """(trip_id, route_id, direction, headsign) of every trip."""
        out = []
        for route_id, _, long_name, *_rest in ROUTES:
            ends = long_name.split(" - ")
            for direction in (0, 1):
                for n in range(TRIPS_PER_DIRECTION):
                    out.append((f"{route_id}-{direction}-{n + 1:02d}", route_id, direction,
                                ends[1 - direction]))
        return out

    def feed_files(self) -> dict[str, bytes]:
        files = {
            "agency.txt": _csv(list(AGENCY), [list(AGENCY.values())]),
            "stops.txt": _csv(
                ("stop_id", "stop_code", "stop_name", "stop_lat", "stop_lon", "zone_id",
                 "wheelchair_boarding"),
                [(s, s[1:], name, f"{lat:.5f}", f"{lon:.5f}", zone, "1")
                 for s, name, lat, lon, zone in STOPS]),
            "routes.txt": _csv(
                ("route_id", "agency_id", "route_short_name", "route_long_name", "route_type",
                 "route_color", "route_text_color", "route_sort_order"),
                [(r, "RATC", short, long_name, kind, colour, "FFFFFF", n)
                 for n, (r, short, long_name, kind, colour, _) in enumerate(ROUTES)]),
            "trips.txt": _csv(
                ("route_id", "service_id", "trip_id", "trip_headsign", "direction_id",
                 "wheelchair_accessible"),
                [(route, SERVICE, trip, head, d, 1) for trip, route, d, head in self.trips()]),
            "calendar.txt": _csv(
                ("service_id", "monday", "tuesday", "wednesday", "thursday", "friday",
                 "saturday", "sunday", "start_date", "end_date"),
                [(SERVICE, 1, 1, 1, 1, 1, 0, 0, "20260101", "20261231")]),
            "stop_times.txt": _csv(
                ("trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence"),
                self._stop_times()),
            "fare_media.txt": _csv(("fare_media_id", "fare_media_name", "fare_media_type"),
                                   FARE_MEDIA),
            "fare_products.txt": _csv(
                ("fare_product_id", "fare_product_name", "fare_media_id", "fare_media_type",
                 "amount", "currency", "rider_category_id", "product_kind", "validity"),
                [(p, name, media, dict((m, t) for m, _, t in FARE_MEDIA)[media], amount, "RON",
                  rider, kind, validity)
                 for p, name, media, amount, rider, kind, validity in FARE_PRODUCTS]),
        }
        self._spoil(files)
        return files

    def _stop_times(self) -> list[tuple[str, str, str, str, int]]:
        stops_of = {r[0]: r[5] for r in ROUTES}
        rows = []
        for trip, route, direction, _ in self.trips():
            n = int(trip.rsplit("-", 1)[1])
            sequence = stops_of[route] if direction == 0 else tuple(reversed(stops_of[route]))
            for i, stop in enumerate(sequence):
                minutes = 5 * 60 + n * 40 + direction * 20 + i * 3
                hhmm = f"{minutes // 60:02d}:{minutes % 60:02d}:00"
                rows.append((trip, hhmm, hhmm, stop, i + 1))
        return rows

    def _spoil(self, files: dict[str, bytes]) -> None:
        if "latin1-stops" in self.bad:
            line = "S15,15,Piaţa Gării Craiova,44.32990,23.81100,A,1\r\n"
            files["stops.txt"] += line.encode("cp1250")
        if "bad-coordinates" in self.bad:
            files["stops.txt"] += b"S16,16,Bulevardul Dacia,144.30000,23.79000,A,1\r\n"
        if "short-row" in self.bad:
            files["routes.txt"] += b"E2,RATC,E2,Gara - Craio"

    def feed_zip(self) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in self.feed_files().items():
                # A fixed timestamp: the same feed is the same bytes (deterministic with seed).
                info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, content)
        data = out.getvalue()
        return data[: len(data) // 2] if "truncated-feed" in self.bad else data

    # -- the tap log --

    def tap_time(self, seq: int) -> datetime:
        """Simulated taps are `interval` s apart, jittered within it: strictly increasing."""
        jitter = random.Random(f"{self.seed}:t:{seq}").random() * self.interval * 0.9
        return self.start + timedelta(seconds=(seq - 1) * self.interval + jitter)

    def tap(self, seq: int) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}:{seq}")
        route_id, *_, stops = rng.choice(ROUTES)
        direction = rng.randrange(2)
        trip = f"{route_id}-{direction}-{rng.randrange(TRIPS_PER_DIRECTION) + 1:02d}"
        uid, media = rng.choice(self._pool)
        products, weights = zip(*CARD_PRODUCTS[media], strict=True)
        product = rng.choices(products, weights)[0]
        rejected = rng.random() < 0.06
        reason = rng.choices(*zip(*REJECTIONS, strict=True))[0] if rejected else None
        status = {"BLOCKED": "BLOCKED", "EXPIRED": "EXPIRED"}.get(reason or "", "ACTIVE")
        vehicle = f"{'T' if route_id == '1' else 'A'}{rng.randrange(1, 40):03d}"
        amount = None
        if product in ("CARD-1C", "EMV-1C") and not rejected:
            amount = "2.50" if product == "CARD-1C" else "3.00"
        stop = rng.choice(stops)
        bad = bool(self.bad) and seq % self.bad_every == 0
        if bad and "unknown-stop" in self.bad:
            stop = "S99"
        if bad and "unknown-product" in self.bad:
            product = "ABON-ANUL-2019"
        doc: dict[str, Any] = {
            "seq": seq, "txn": f"{vehicle}-{seq:08d}", "card_uid": uid, "media": media,
            "card_status": status, "validator": f"{vehicle}-V{rng.randrange(1, 4)}",
            "vehicle": vehicle, "stop_id": stop, "route_id": route_id, "trip_id": trip,
            "direction": direction,
            # Validators log local time without an offset (parse.py reads it as Romanian time).
            "ts": self.tap_time(seq).astimezone(LOCAL_TIME).replace(tzinfo=None)
            .isoformat(timespec="seconds"),
            "product": product, "result": "REJ" if rejected else "OK", "reason": reason,
            "amount": amount, "riders": 1}
        return doc

    def tap_line(self, seq: int) -> str:
        line = json.dumps(self.tap(seq), ensure_ascii=False)
        if self.bad and seq % self.bad_every == 0 and "broken-json" in self.bad:
            return line[: len(line) // 2]
        return line

    def hour_seqs(self, hour: datetime) -> range:
        """The seqs of the taps logged in [hour, hour + 1 h)."""
        end = hour + timedelta(hours=1)
        first = max(1, int((hour - self.start).total_seconds() // self.interval))
        while first > 1 and self.tap_time(first - 1) >= hour:
            first -= 1
        while self.tap_time(first) < hour:
            first += 1
        last = first
        while last <= self.taps and self.tap_time(last) < end:
            last += 1
        return range(first, last)

    def closed_hours(self, head: int, after: int | None) -> list[datetime]:
        """Start (UTC) of each hour entirely before tap `head`'s hour, after epoch `after`."""
        if head < 1:
            return []
        first = self.tap_time(1).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        current = self.tap_time(head).astimezone(UTC).replace(minute=0, second=0,
                                                              microsecond=0)
        if head >= self.taps:
            current += timedelta(hours=1)  # the log is complete: its last hour is closed too
        hours = []
        hour = first
        while hour < current:
            if after is None or hour.timestamp() > after:
                hours.append(hour)
            hour += timedelta(hours=1)
        return hours


class TicketingSimulator:
    """Serves a TicketingSystem on host:port (port 0: any free port)."""

    def __init__(self, system: TicketingSystem, *, port: int = 0, live: float = 0.0,
                 host: str = "127.0.0.1") -> None:
        self.system, self.port, self.live, self.host = system, port, live, host
        self.head = 0 if live else system.taps
        self.url = ""
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self._grow: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/gtfs/feed.zip", self._feed)
        app.router.add_get("/taps", self._taps)
        app.router.add_get("/taps/hours", self._hours)
        return app

    async def _feed(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(body=self.system.feed_zip(), content_type="application/zip")

    def _int(self, request: web.Request, name: str, default: int) -> int:
        try:
            return int(request.query.get(name, default))
        except ValueError:
            raise web.HTTPBadRequest(text=f"{name} must be an integer") from None

    async def _taps(self, request: web.Request) -> web.Response:
        self.requests += 1
        after = max(0, self._int(request, "after", 0))
        limit = min(MAX_PAGE, max(1, self._int(request, "limit", 1000)))
        last = min(self.head, after + limit)
        lines = [self.system.tap_line(seq) for seq in range(after + 1, last + 1)]
        body = "".join(line + "\n" for line in lines)
        return web.Response(text=body, content_type="application/x-ndjson",
                            headers={"X-Log-Head": str(self.head)})

    async def _hours(self, request: web.Request) -> web.Response:
        self.requests += 1
        raw = request.query.get("after")
        after = self._int(request, "after", 0) if raw is not None else None
        out = []
        for hour in self.system.closed_hours(self.head, after)[:24]:
            seqs = self.system.hour_seqs(hour)
            out.append({"hour": int(hour.timestamp()), "start": hour.isoformat(),
                        "taps": [self.system.tap_line(s) for s in seqs if s <= self.head]})
        return web.json_response(out)

    async def _growing(self) -> None:
        while self.head < self.system.taps:
            await asyncio.sleep(self.live)
            self.head += 1

    async def start(self) -> Config:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.port
        self.url = f"http://{self.host}:{self.port}"
        if self.live:
            self._grow = asyncio.create_task(self._growing())
        return {"url": self.url}

    async def stop(self) -> None:
        if self._grow:
            self._grow.cancel()
        if self._runner:
            await self._runner.cleanup()
            self._runner = None


def system_of(config: Config) -> TicketingSystem:
    """A TicketingSystem from the `simulator` settings of a config (or the defaults)."""
    bad = config.get("bad", ())
    return TicketingSystem(
        seed=int(config.get("seed", 7)), taps=int(config.get("taps", 2000)),
        interval=float(config.get("interval", 3.0)), cards=int(config.get("cards", 400)),
        bad=frozenset(bad.split(",") if isinstance(bad, str) else bad) - {""},
        bad_every=int(config.get("bad_every", 50)))


def simulator_of(config: Config) -> TicketingSimulator:
    return TicketingSimulator(system_of(config), port=int(config.get("port", 0)),
                              live=float(config.get("live", 0.0)),
                              host=str(config.get("host", "127.0.0.1")))


async def _serve(args: argparse.Namespace) -> None:
    simulator = simulator_of(vars(args))
    config = await simulator.start()
    print(f"RAT Craiova back office simulator at {config['url']} "
          f"(GET /gtfs/feed.zip, /taps?after=0, /taps/hours)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--taps", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=3.0)
    parser.add_argument("--live", type=float, default=0.0, help="real seconds per new tap")
    parser.add_argument("--bad", default="",
                        help=f"comma-separated: {', '.join(sorted(BAD_KINDS))}")
    parser.add_argument("--bad-every", type=int, default=50)
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
