"""Entity create, retrieve and partial update against a bare aiohttp baseline, in one run.

    .venv/bin/python bench/core.py [--clients 16] [--requests 3000] [--store sqlite:///...]

Prints requests/s and p50/p95 latency per workload, and each broker figure as a ratio of the
baseline's requests/s measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import aiohttp

from bench.common import Result, drive, free_port, start

LAMP = {
    "type": "Streetlight",
    "powerState": {"type": "Property", "value": "on"},
    "dimmingLevel": {"type": "Property", "value": 0.8, "unitCode": "P1"},
    "location": {"type": "GeoProperty",
                 "value": {"type": "Point", "coordinates": [23.7967, 44.3190]}},
    "refStreetlightGroup": {"type": "Relationship",
                            "object": "urn:ngsi-ld:StreetlightGroup:calea-unirii"},
}


def lamp_id(i: int) -> str:
    return f"urn:ngsi-ld:Streetlight:bench-{i}"


async def run(clients: int, total: int, store: str | None) -> list[str]:
    lines = []
    base_port, broker_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        store = store or f"sqlite:///{Path(tmp) / 'bench.db'}"
        baseline = start(["bench/baseline_server.py", str(base_port)], base_port)
        broker = start(["-m", "broker", "serve", "--port", str(broker_port), "--store", store,
                        "--log-level", "WARNING"], broker_port)
        try:
            async def fixed(s: aiohttp.ClientSession, i: int) -> int:
                async with s.get("/ngsi-ld/v1/entities/x") as r:
                    await r.read()
                    return r.status

            async def create(s: aiohttp.ClientSession, i: int) -> int:
                async with s.post("/ngsi-ld/v1/entities", json={"id": lamp_id(i), **LAMP}) as r:
                    await r.read()
                    return r.status

            async def retrieve(s: aiohttp.ClientSession, i: int) -> int:
                async with s.get(f"/ngsi-ld/v1/entities/{lamp_id(i)}") as r:
                    await r.read()
                    return r.status

            async def update(s: aiohttp.ClientSession, i: int) -> int:
                body = {"value": (i % 100) / 100}
                async with s.patch(f"/ngsi-ld/v1/entities/{lamp_id(i)}/attrs/dimmingLevel",
                                   json=body) as r:
                    await r.read()
                    return r.status

            base_url = f"http://127.0.0.1:{base_port}"
            broker_url = f"http://127.0.0.1:{broker_port}"
            await drive("warm-up", base_url, fixed, clients=clients, total=200)
            ref = await drive("baseline (fixed JSON)", base_url, fixed, clients=clients,
                              total=total)
            results: list[Result] = [
                await drive("entity create", broker_url, create, clients=clients, total=total),
                await drive("entity retrieve", broker_url, retrieve, clients=clients,
                            total=total),
                await drive("attribute partial update", broker_url, update, clients=clients,
                            total=total),
            ]
            lines.append(f"store {store.split('://')[0]}, {clients} concurrent clients, "
                         f"{total} requests per workload")
            lines.append(ref.line())
            lines.extend(r.line(ref) for r in results)
        finally:
            for proc in (baseline, broker):
                proc.terminate()
                proc.wait(timeout=30)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--store", help="store URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    for line in asyncio.run(run(args.clients, args.requests, args.store)):
        print(line)


if __name__ == "__main__":
    main()
