"""Notification throughput and latency with 100 subscriptions, over HTTP and MQTT.

    .venv/bin/python -m bench.notifications [--updates 2000] [--clients 8] [--skip-mqtt]

A real `cetate serve` on a fresh SQLite store; 100 subscriptions; clients send a steady stream
of attribute updates (upserts) as fast as the broker acknowledges them. Two shapes:
- spread: each subscription watches its own entity, each update owes one notification;
- fan-out: the 100 subscriptions watch every entity, each update owes 100 notifications.
For each: notifications/s delivered (first update sent to last notification received) and the
latency from an update's 2xx to its notification's arrival, p50/p95/p99 (one clock: the bench
process runs both the clients and the receiver). Baselines in the same run: the same update
stream with no subscription (the cost of recording notifications in the write transaction),
and the bench's own POST to the receiver (the floor of any HTTP delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aiomqtt
import orjson
from aiohttp import web

from bench.common import free_port, start

SUBSCRIPTIONS = 100
MQTT = ("127.0.0.1", 1883)


@dataclass
class Clock:
    acked: dict[int, float] = field(default_factory=dict)  # seq -> time of the 2xx
    arrived: dict[int, list[float]] = field(default_factory=dict)  # seq -> arrivals
    count: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    def arrive(self, body: dict[str, Any]) -> None:
        now = time.perf_counter()
        for entity in body["data"]:  # keyValues: "seq": 5
            self.arrived.setdefault(entity["seq"], []).append(now)
            self.count += 1
        if self.expected and self.count >= self.expected:
            self.done.set()

    def latencies_ms(self) -> list[float]:
        return sorted(max(0.0, (t - self.acked[s]) * 1000) for s, ts in self.arrived.items()
                      if s in self.acked for t in ts)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


async def receiver(clock: Clock) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        clock.arrive(orjson.loads(await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/n/{i}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def subscription(uri: str, entity_id: str | None) -> dict[str, Any]:
    selector: dict[str, Any] = {"type": "Sensor"}
    if entity_id is not None:
        selector["id"] = entity_id
    return {"type": "Subscription", "entities": [selector], "watchedAttributes": ["seq"],
            "notification": {"format": "keyValues", "attributes": ["seq"],
                             "endpoint": {"uri": uri}}}


async def stream(base: str, updates: int, clients: int, clock: Clock, entities: int) -> float:
    """Send `updates` upserts from `clients` clients; seconds taken."""
    counter = iter(range(updates))
    seq0 = max(clock.acked, default=-1) + 1

    async def client(session: aiohttp.ClientSession) -> None:
        for i in counter:
            seq = seq0 + i
            body = [{"id": f"urn:ngsi-ld:Sensor:s{seq % entities}", "type": "Sensor",
                     "seq": {"type": "Property", "value": seq}}]
            async with session.post("/ngsi-ld/v1/entityOperations/upsert", json=body,
                                    params={"options": "update"}) as r:
                await r.read()
                if r.status < 300:
                    clock.acked[seq] = time.perf_counter()

    started = time.perf_counter()
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=clients)) as s:
        await asyncio.gather(*(client(s) for _ in range(clients)))
    return time.perf_counter() - started


async def run_case(name: str, base: str, uris: list[str], per_entity: bool, clock: Clock,
                   updates: int, clients: int) -> str:
    async with aiohttp.ClientSession(base) as s:
        for i, uri in enumerate(uris):
            body = subscription(uri, f"urn:ngsi-ld:Sensor:s{i}" if per_entity else None)
            async with s.post("/ngsi-ld/v1/subscriptions", json=body) as r:
                assert r.status == 201, await r.text()
    fan = 1 if per_entity else len(uris)
    clock.expected = clock.count + updates * fan
    clock.done.clear()
    started = time.perf_counter()
    sent = await stream(base, updates, clients, clock, len(uris))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(clock.done.wait(), 120)
    took = time.perf_counter() - started
    lat = clock.latencies_ms()
    got = clock.count - (clock.expected - updates * fan)
    line = (f"{name:<22} updates {updates / sent:7.0f}/s  notifications {got / took:7.0f}/s "
            f"({got}/{updates * fan})  latency p50 {pct(lat, .5):7.1f} ms  p95 "
            f"{pct(lat, .95):7.1f} ms  p99 {pct(lat, .99):7.1f} ms")
    # Remove them: the next case starts clean.
    async with aiohttp.ClientSession(base) as s, \
            s.get("/ngsi-ld/v1/subscriptions", params={"limit": "1000"}) as r:
        for sub in await r.json():
            async with s.delete(f"/ngsi-ld/v1/subscriptions/{sub['id']}") as d:
                await d.read()
    clock.acked.clear()
    clock.arrived.clear()
    return line


async def mqtt_listener(clock: Clock, ready: asyncio.Event) -> None:
    async with aiomqtt.Client(MQTT[0], MQTT[1]) as client:
        await client.subscribe("cetate/bench/#", qos=1)
        ready.set()
        async for message in client.messages:
            clock.arrive(orjson.loads(bytes(message.payload))["body"])  # type: ignore[arg-type]


async def receiver_floor(url: str, n: int = 500) -> str:
    body = orjson.dumps({"id": "x", "type": "Notification", "data": []})
    lat = []
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            t = time.perf_counter()
            async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
            lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    return (f"{'baseline: bare POST':<22} to the receiver, latency p50 {pct(lat, .5):7.2f} ms  "
            f"p95 {pct(lat, .95):7.2f} ms  p99 {pct(lat, .99):7.2f} ms")


async def main(args: argparse.Namespace) -> None:
    clock = Clock()
    runner, rec = await receiver(clock)
    floor_clock = Clock()
    floor_runner, floor = await receiver(floor_clock)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start(["-m", "broker", "serve", "--port", str(port), "--store",
                      f"sqlite:///{tmp}/bench.db", "--allow-network", "127.0.0.0/8",
                      "--log-level", "WARNING"], port)
        try:
            print(f"cetate serve, SQLite, {SUBSCRIPTIONS} subscriptions, {args.clients} "
                  f"clients, {args.updates} updates per case")
            print(await receiver_floor(floor + "/n/0"))
            sent = await stream(base, args.updates, args.clients, clock, SUBSCRIPTIONS)
            base_rate = args.updates / sent
            print(f"{'baseline: no subs':<22} updates {base_rate:7.0f}/s")
            clock.acked.clear()
            uris = [f"{rec}/n/{i}" for i in range(SUBSCRIPTIONS)]
            print(await run_case("HTTP spread (1 each)", base, uris, True, clock,
                                 args.updates, args.clients))
            print(await run_case("HTTP fan-out (x100)", base, uris, False, clock,
                                 max(1, args.updates // 10), args.clients))
            if not args.skip_mqtt:
                ready = asyncio.Event()
                listener = asyncio.create_task(mqtt_listener(clock, ready))
                await asyncio.wait_for(ready.wait(), 10)
                muris = [f"mqtt://127.0.0.1:1883/cetate/bench/{i}" for i in range(SUBSCRIPTIONS)]
                print(await run_case("MQTT spread (1 each)", base, muris, True, clock,
                                     args.updates, args.clients))
                print(await run_case("MQTT fan-out (x100)", base, muris, False, clock,
                                     max(1, args.updates // 10), args.clients))
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await listener
        finally:
            proc.terminate()
            proc.wait()
    await runner.cleanup()
    await floor_runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--skip-mqtt", action="store_true")
    asyncio.run(main(parser.parse_args()))
