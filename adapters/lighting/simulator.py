"""A simulator of the Luminis street-lighting CMS of Craiova: the vendor's JSON REST API on a
real port (aiohttp), seeded so that a seed always gives the same city.

    python -m adapters.lighting.simulator --seed 7 --port 8081

The API (what the adapter reads and writes):
- `GET /api/v1/changes?after=SEQ&limit=N`: every cabinet, group and controller whose state
  changed after SEQ, oldest first, each object once with its latest state (the CMS compacts
  its change log), `{"items": [{"seq", "kind", "data"}], "last": SEQ}`.
- `GET /api/v1/cabinets`, `/api/v1/groups`, `/api/v1/controllers[/{id}]`: current state;
  `GET /api/v1/lamps/{lampId}`: the controller of a lamp.
- `POST /api/v1/controllers/{id}/commands` `{"command": "switch", "value": "ON"|"OFF"}` or
  `{"command": "dim", "value": 0..100}`: 200 executed, 409 rejected (the controller is
  unreachable, or its lamp failed), 422 malformed; the controller then shows it in
  `lastCommand` and moves forward in the change feed.
Test hooks (not part of the vendor's API):
- `POST /sim/tick?n=N`: advance the city N minutes (energy, burning hours, faults, voltages).
- `POST /sim/inject` `{"kind": K, "count": N}`: bad data on demand. Record-level kinds add
  bogus controllers to the change feed (`impossible`: a dim level of 250 %, `unknown-ref`: a
  group no cabinet has, `encoding`: an address decoded with the wrong charset); page-level
  kinds spoil the next N change-feed responses (`truncated`: the body cut in half,
  `latin1`: the body encoded ISO-8859-2 instead of UTF-8).
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 17:00 in Craiova: the lamps are on
DEFAULT_LIMIT = 500  # changes per page unless the caller asks (the CMS caps it at MAX_LIMIT)
MAX_LIMIT = 1000
FAST_FORWARD_TICKS = 60  # simulated minutes one change-feed request may fast-forward

# (street, (lat, lon) at one end, (lat, lon) at the other): the lamps are spread along it.
STREETS: tuple[tuple[str, tuple[float, float], tuple[float, float]], ...] = (
    ("Calea Unirii", (44.3135, 23.7990), (44.3240, 23.7945)),
    ("Bulevardul Nicolae Titulescu", (44.3228, 23.7880), (44.3232, 23.8050)),
    ("Strada Mihai Viteazu", (44.3185, 23.7920), (44.3200, 23.7985)),
    ("Bulevardul Carol I", (44.3240, 23.7960), (44.3300, 23.7935)),
    ("Calea București", (44.3185, 23.8000), (44.3210, 23.8300)),
    ("Bulevardul Ștefan cel Mare", (44.3140, 23.8010), (44.3110, 23.8120)),
    ("Strada Alexandru Ioan Cuza", (44.3175, 23.7955), (44.3215, 23.7985)),
    ("Calea Severinului", (44.3250, 23.7700), (44.3270, 23.7870)),
    ("Bulevardul Dacia", (44.3320, 23.7920), (44.3340, 23.8150)),
    ("Bulevardul 1 Mai", (44.3090, 23.7930), (44.3040, 23.8010)),
)
LAMP_TYPES = (("LED", 60.0), ("LED", 90.0), ("LED", 120.0), ("HPS", 150.0))
CABINET_MODELS = (("Schréder", "Owlet IoT Cabinet"), ("Elba", "TELEMAN-3F"),
                  ("Flashnet", "inteliLIGHT FRE-220"))
GROUP_NAMES = ("carosabil", "trotuar", "intersecție")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Lighting:
    """The CMS's state: cabinets, groups, controllers, and the compacted change log."""

    seed: int = 7
    cabinets_count: int = 8
    groups_per_cabinet: int = 3
    lamps_per_group: int = 10
    page: int = DEFAULT_LIMIT  # changes per answer when the caller gives no limit
    fast_forward: bool = False  # the clock runs as fast as the feed is read (demos, benchmarks)
    rng: random.Random = field(init=False)
    clock: datetime = START
    seq: int = 0
    cabinets: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    controllers: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    spoiled_pages: list[str] = field(default_factory=list)
    commands: int = 0
    bogus: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        for c in range(self.cabinets_count):
            self._build_cabinet(c)

    # -- building the city -------------------------------------------------------------------

    def _along(self, street: int, t: float) -> tuple[float, float]:
        _, (lat0, lon0), (lat1, lon1) = STREETS[street % len(STREETS)]
        jitter = self.rng.uniform(-0.00008, 0.00008)  # ~ 9 m: the two sides of the street
        return (round(lat0 + (lat1 - lat0) * t + jitter, 6),
                round(lon0 + (lon1 - lon0) * t - jitter, 6))

    def _build_cabinet(self, c: int) -> None:
        street = STREETS[c % len(STREETS)][0]
        cab = f"CAB-{c + 1:02d}"
        lat, lon = self._along(c, 0.02)
        brand, model = self.rng.choice(CABINET_MODELS)
        group_ids = [f"GRP-{c + 1:02d}-{g + 1}" for g in range(self.groups_per_cabinet)]
        self.cabinets[cab] = {
            "cabinetId": cab, "name": f"Post de aprindere {street} {c + 1}",
            "address": f"{street} {self.rng.randint(1, 120)}", "lat": lat, "lon": lon,
            "serial": f"{brand[:3].upper()}-{self.rng.randint(100000, 999999)}",
            "brand": brand, "model": model, "mode": self.rng.choice(("AUTO", "AUTO", "SEMI")),
            "groupIds": group_ids, "energyKWh": round(self.rng.uniform(2e4, 9e4), 1),
            "activePowerKW": 0.0, "maxPowerKW": 40.0, "phaseVoltagesV": [230.0, 230.0, 230.0],
            "commissioned": _iso(START - timedelta(days=self.rng.randint(400, 4000))),
            "reportedAt": _iso(self.clock)}
        self._changed("cabinet", cab)
        for g, gid in enumerate(group_ids):
            glat, glon = self._along(c, (g + 0.5) / self.groups_per_cabinet)
            first = len(self.controllers) + 1
            self.groups[gid] = {
                "groupId": gid, "cabinetId": cab,
                "name": f"{street}, {GROUP_NAMES[g % len(GROUP_NAMES)]}", "lat": glat,
                "lon": glon, "schedule": "NIGHT_DIM" if g == 1 else "NIGHT_ON",
                "dimLevel": 70 if g == 1 else 100, "state": "DIMMED" if g == 1 else "ON",
                "lampIds": [f"L-{first + n:06d}" for n in range(self.lamps_per_group)],
                "reportedAt": _iso(self.clock)}
            self._changed("group", gid)
        for g, gid in enumerate(group_ids):
            for n in range(self.lamps_per_group):
                index = (g * self.lamps_per_group + n)
                t = index / max(1, self.groups_per_cabinet * self.lamps_per_group - 1)
                self._build_controller(c, cab, gid, street, t)
        self._refresh_cabinet(cab)

    def _build_controller(self, c: int, cab: str, gid: str, street: str, t: float) -> None:
        n = len(self.controllers) + 1
        lamp_type, rated = self.rng.choice(LAMP_TYPES)
        dimmed = gid.endswith("-2")
        lat, lon = self._along(c, t)
        pole = f"{''.join(w[0] for w in street.split()).upper()}-{n:04d}"
        installed = START - timedelta(days=self.rng.randint(200, 3000))
        cid = f"LC-{n:06d}"
        self.controllers[cid] = {
            "controllerId": cid, "lampId": f"L-{n:06d}",
            "serial": f"NB{self.rng.randint(10**7, 10**8 - 1)}",
            "firmware": self.rng.choice(("4.2.1", "4.2.3", "4.3.0")), "cabinetId": cab,
            "groupId": gid, "address": f"{street} {self.rng.randint(1, 150)}", "poleNo": pole,
            "lat": lat, "lon": lon, "lampType": lamp_type, "ratedPowerW": rated,
            "state": "DIMMED" if dimmed else "ON", "dimLevel": 70 if dimmed else 100,
            "powerW": 0.0, "voltageV": 230.0, "currentA": 0.0, "powerFactor": 0.95,
            "energyKWh": round(self.rng.uniform(500, 8000), 2),
            "burningHours": self.rng.randint(1000, 40000), "faults": [],
            "lastSwitchOn": _iso(self.clock - timedelta(minutes=15)),
            "lastSwitchOff": _iso(self.clock - timedelta(hours=9)),
            "installed": _iso(installed),
            "lastLampChange": _iso(installed + timedelta(days=self.rng.randint(0, 150))),
            "reportedAt": _iso(self.clock), "lastCommand": None}
        self._electrics(self.controllers[cid])
        self._changed("controller", cid)

    def _electrics(self, ctl: dict[str, Any]) -> None:
        on = ctl["state"] != "OFF" and "LAMP_FAILURE" not in ctl["faults"]
        voltage = round(self.rng.uniform(224.0, 236.0), 1)
        power = round(ctl["ratedPowerW"] * ctl["dimLevel"] / 100 * self.rng.uniform(0.97, 1.02),
                      1) if on else 0.0
        ctl.update(voltageV=voltage, powerW=power,
                   currentA=round(power / voltage / 0.95, 3) if on else 0.0)

    def _refresh_cabinet(self, cab: str) -> None:
        cabinet = self.cabinets[cab]
        cabinet["activePowerKW"] = round(sum(
            c["powerW"] for c in self.controllers.values() if c["cabinetId"] == cab) / 1000, 3)
        cabinet["phaseVoltagesV"] = [round(self.rng.uniform(226.0, 234.0), 1) for _ in range(3)]
        cabinet["reportedAt"] = _iso(self.clock)
        self._changed("cabinet", cab)

    def _changed(self, kind: str, key: str) -> None:
        self.seq += 1
        store = {"cabinet": self.cabinets, "group": self.groups,
                 "controller": self.controllers}[kind]
        self.log[(kind, key)] = (self.seq, store[key])

    # -- time passing ------------------------------------------------------------------------

    def tick(self, minutes: int = 1) -> None:
        """Advance the city: a tenth of the controllers report; rarely a fault comes or goes."""
        for _ in range(minutes):
            self.clock += timedelta(minutes=1)
            ids = sorted(self.controllers)
            touched_cabinets = set()
            for cid in self.rng.sample(ids, max(1, len(ids) // 10)):
                ctl = self.controllers[cid]
                roll = self.rng.random()
                if roll < 0.01 and not ctl["faults"]:
                    ctl["faults"] = [self.rng.choice(("LAMP_FAILURE", "COMM_LOSS",
                                                      "LANTERN_BROKEN"))]
                elif roll < 0.03 and ctl["faults"]:
                    ctl["faults"] = []  # repaired
                self._electrics(ctl)
                ctl["energyKWh"] = round(ctl["energyKWh"] + ctl["powerW"] * 10 / 60 / 1000, 3)
                if ctl["powerW"] > 0 and self.clock.minute % 6 == 0:
                    ctl["burningHours"] += 1
                ctl["reportedAt"] = _iso(self.clock)
                self._changed("controller", cid)
                touched_cabinets.add(ctl["cabinetId"])
            for cab in sorted(touched_cabinets):
                self.cabinets[cab]["energyKWh"] = round(
                    self.cabinets[cab]["energyKWh"] + self.cabinets[cab]["activePowerKW"] / 60,
                    2)
                self._refresh_cabinet(cab)

    # -- commands ----------------------------------------------------------------------------

    def command(self, cid: str, body: Any) -> tuple[int, dict[str, Any]]:
        """Carry out a switch or dim command: (HTTP status, answer)."""
        ctl = self.controllers.get(cid)
        if ctl is None:
            return 404, {"error": f"no controller {cid}"}
        if not isinstance(body, dict) or body.get("command") not in ("switch", "dim"):
            return 422, {"error": "command must be 'switch' or 'dim'"}
        value = body.get("value")
        if body["command"] == "switch" and value not in ("ON", "OFF"):
            return 422, {"error": "switch takes 'ON' or 'OFF'"}
        if body["command"] == "dim" and (not isinstance(value, int) or isinstance(value, bool)
                                         or not 0 <= value <= 100):
            return 422, {"error": "dim takes an integer level 0..100"}
        self.commands += 1
        self.clock += timedelta(seconds=1)
        reason = ""
        if "COMM_LOSS" in ctl["faults"]:
            reason = "controller unreachable (COMM_LOSS)"
        elif "LAMP_FAILURE" in ctl["faults"] and value != "OFF":
            reason = "lamp failed: only switching off is possible"
        if not reason:
            if body["command"] == "switch":
                ctl["state"] = str(value)
                ctl["dimLevel"] = 100 if value == "ON" else ctl["dimLevel"]
                ctl["lastSwitchOn" if value == "ON" else "lastSwitchOff"] = _iso(self.clock)
            else:
                level = int(value)  # type: ignore[arg-type]
                ctl["dimLevel"] = level
                ctl["state"] = "OFF" if level == 0 else ("ON" if level == 100 else "DIMMED")
            self._electrics(ctl)
        answer = {"id": f"CMD-{self.commands:06d}", "command": body["command"], "value": value,
                  "status": "rejected" if reason else "executed", "reason": reason,
                  "at": _iso(self.clock)}
        ctl["lastCommand"] = answer
        ctl["reportedAt"] = _iso(self.clock)
        self._changed("controller", cid)
        return (409 if reason else 200), answer

    # -- the change feed ---------------------------------------------------------------------

    def changes(self, after: int, limit: int) -> dict[str, Any]:
        entries = sorted((seq, kind, data) for (kind, _), (seq, data) in self.log.items()
                         if seq > after)[:limit]
        items = [{"seq": seq, "kind": kind, "data": data} for seq, kind, data in entries]
        return {"items": items, "last": items[-1]["seq"] if items else after}

    def inject(self, kind: str, count: int) -> None:
        """Bad data on demand (see the module docstring for the kinds)."""
        if kind in ("truncated", "latin1"):
            self.spoiled_pages.extend([kind] * count)
            return
        if kind not in ("impossible", "unknown-ref", "encoding"):
            raise ValueError(f"unknown kind {kind!r}")
        template = self.controllers[min(self.controllers)]
        for _ in range(count):
            self.bogus += 1
            bad = json.loads(json.dumps(template))
            bad.update(controllerId=f"LC-BAD-{self.bogus:04d}", lampId=f"L-BAD-{self.bogus:04d}",
                       reportedAt=_iso(self.clock))
            if kind == "impossible":
                bad["dimLevel"] = 250
            elif kind == "unknown-ref":
                bad["groupId"] = "GRP-99-9"
            else:  # written in Windows-1250 by the CMS, read as UTF-8: replacement characters
                bad["address"] = "Strada Ştefan Velovan 3".encode("cp1250").decode(
                    "utf-8", "replace")
            self.seq += 1
            self.log[("controller", bad["controllerId"])] = (self.seq, bad)

    def catch_up(self, after: int, limit: int) -> None:
        """In fast_forward, advance the city until a page after `after` is full, or holds half
        the city (the feed is compacted: it never holds more than one change per object), at
        most FAST_FORWARD_TICKS minutes per request."""
        target = min(limit, len(self.log) // 2)
        for _ in range(FAST_FORWARD_TICKS if self.fast_forward else 0):
            if sum(1 for seq, _ in self.log.values() if seq > after) >= target:
                return
            self.tick()

    def page_bytes(self, after: int, limit: int) -> bytes:
        self.catch_up(after, limit)
        body = json.dumps(self.changes(after, limit), ensure_ascii=False).encode("utf-8")
        if not self.spoiled_pages:
            return body
        spoil = self.spoiled_pages.pop(0)
        if spoil == "truncated":
            return body[: len(body) // 2]
        # ISO-8859-2, as an old CMS front end sends it: ş/ţ/ă become single bytes (and ș/ț,
        # which it lacks, "?"); the closing 0xFF, never valid UTF-8, makes sure of it
        return body.decode("utf-8").encode("iso-8859-2", "replace") + b"\xff"


# -- HTTP ------------------------------------------------------------------------------------

CMS_KEY: web.AppKey[Lighting] = web.AppKey("cms", Lighting)


def _int(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None


async def _changes(request: web.Request) -> web.Response:
    cms = request.app[CMS_KEY]
    after = _int(request, "after", 0)
    limit = min(max(1, _int(request, "limit", cms.page)), MAX_LIMIT)
    return web.Response(body=cms.page_bytes(after, limit), content_type="application/json",
                        charset="utf-8")


async def _list(request: web.Request) -> web.Response:
    cms = request.app[CMS_KEY]
    store = {"cabinets": cms.cabinets, "groups": cms.groups,
             "controllers": cms.controllers}[request.match_info["what"]]
    return web.json_response([store[k] for k in sorted(store)])


async def _controller(request: web.Request) -> web.Response:
    ctl = request.app[CMS_KEY].controllers.get(request.match_info["cid"])
    if ctl is None:
        raise web.HTTPNotFound()
    return web.json_response(ctl)


async def _lamp(request: web.Request) -> web.Response:
    lamp = request.match_info["lamp"]
    for ctl in request.app[CMS_KEY].controllers.values():
        if ctl["lampId"] == lamp:
            return web.json_response(ctl)
    raise web.HTTPNotFound()


async def _command(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        body = None
    status, answer = request.app[CMS_KEY].command(request.match_info["cid"], body)
    return web.json_response(answer, status=status)


async def _tick(request: web.Request) -> web.Response:
    cms = request.app[CMS_KEY]
    cms.tick(_int(request, "n", 1))
    return web.json_response({"seq": cms.seq, "clock": _iso(cms.clock)})


async def _inject(request: web.Request) -> web.Response:
    body = await request.json()
    try:
        request.app[CMS_KEY].inject(str(body.get("kind")), int(body.get("count", 1)))
    except ValueError as exc:
        raise web.HTTPUnprocessableEntity(text=str(exc)) from None
    return web.json_response({"seq": request.app[CMS_KEY].seq})


def make_app(cms: Lighting) -> web.Application:
    app = web.Application()
    app[CMS_KEY] = cms
    app.router.add_get("/api/v1/changes", _changes)
    app.router.add_get("/api/v1/controllers/{cid}", _controller)
    app.router.add_post("/api/v1/controllers/{cid}/commands", _command)
    app.router.add_get("/api/v1/lamps/{lamp}", _lamp)
    app.router.add_get("/api/v1/{what:cabinets|groups|controllers}", _list)
    app.router.add_post("/sim/tick", _tick)
    app.router.add_post("/sim/inject", _inject)
    return app


async def start(cms: Lighting, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner,
                                                                                str]:
    """Serve `cms` on host:port (0: a free port); (runner to clean up, base URL)."""
    runner = web.AppRunner(make_app(cms), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, f"http://{host}:{bound}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Luminis CMS simulator (Craiova lighting)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--cabinets", type=int, default=8)
    parser.add_argument("--lamps-per-group", type=int, default=10)
    args = parser.parse_args(argv)
    cms = Lighting(seed=args.seed, cabinets_count=args.cabinets,
                   lamps_per_group=args.lamps_per_group)
    web.run_app(make_app(cms), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
