"""The store engines side by side: SQLite against PostgreSQL, and 1 worker against 2, in one run.

    .venv/bin/python -m bench.engines [--clients 16] [--requests 2000]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Each configuration is a real `cetate serve` process on a fresh store, driven with bench/core.py's
workloads (entity create, retrieve, attribute partial update) and two queries (type + q, and a
geo-query near a point), by the same concurrent clients. Figures are requests/s and p50/p95
latency, each also as a ratio of a bare aiohttp server's requests/s measured in the same run,
and every configuration as a ratio of SQLite with 1 worker.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg

from bench.common import Request, Result, drive, free_port, start
from bench.core import LAMP, lamp_id

ENTITIES = "/ngsi-ld/v1/entities"
# Craiova's centre; lamps on a grid of 1e-4 degree steps (~8-11 m), 100 to a row.
ORIGIN = (23.7967, 44.3190)


def lamp(i: int) -> dict[str, object]:
    lon, lat = ORIGIN[0] + (i % 100) * 1e-4, ORIGIN[1] + (i // 100) * 1e-4
    return {"id": lamp_id(i), **LAMP, "dimmingLevel": {"type": "Property", "value": (i % 10) / 10},
            "location": {"type": "GeoProperty", "value": {"type": "Point",
                                                          "coordinates": [lon, lat]}}}


def workloads() -> list[tuple[str, Request]]:
    async def create(s: aiohttp.ClientSession, i: int) -> int:
        async with s.post(ENTITIES, json=lamp(i)) as r:
            await r.read()
            return r.status

    async def retrieve(s: aiohttp.ClientSession, i: int) -> int:
        async with s.get(f"{ENTITIES}/{lamp_id(i)}") as r:
            await r.read()
            return r.status

    async def update(s: aiohttp.ClientSession, i: int) -> int:
        async with s.patch(f"{ENTITIES}/{lamp_id(i)}/attrs/dimmingLevel",
                           json={"value": (i % 100) / 100}) as r:
            await r.read()
            return r.status

    async def query_q(s: aiohttp.ClientSession, i: int) -> int:
        params = {"type": "Streetlight", "q": f"dimmingLevel>={(i % 9) / 10}", "limit": "20"}
        async with s.get(ENTITIES, params=params) as r:
            await r.read()
            return r.status

    async def query_near(s: aiohttp.ClientSession, i: int) -> int:
        lon, lat = ORIGIN[0] + (i % 100) * 1e-4, ORIGIN[1] + (i % 20) * 1e-4
        params = {"type": "Streetlight", "georel": "near;maxDistance==50", "geometry": "Point",
                  "coordinates": f"[{lon},{lat}]", "limit": "20"}
        async with s.get(ENTITIES, params=params) as r:
            await r.read()
            return r.status

    return [("entity create", create), ("entity retrieve", retrieve),
            ("attribute partial update", update), ("query type+q, 20", query_q),
            ("query near 50 m, 20", query_near)]


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def measure(store: str, workers: int, clients: int, total: int) -> list[Result]:
    port = free_port()
    proc = start(["-m", "broker", "serve", "--port", str(port), "--store", store,
                  "--workers", str(workers), "--log-level", "WARNING"], port)
    try:
        url = f"http://127.0.0.1:{port}"
        await drive("warm-up", url, workloads()[1][1], clients=clients, total=200)  # 404s
        return [await drive(name, url, request, clients=clients, total=total)
                for name, request in workloads()]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


async def run(clients: int, total: int, pg_admin: str) -> list[str]:
    base_port = free_port()
    baseline = start(["bench/baseline_server.py", str(base_port)], base_port)
    run_id = secrets.token_hex(3)
    databases: list[str] = []

    def postgres() -> str:
        name = f"cetate_bench_{run_id}_{len(databases)}"
        databases.append(name)
        return name

    lines: list[str] = []
    try:
        async def fixed(s: aiohttp.ClientSession, i: int) -> int:
            async with s.get("/ngsi-ld/v1/entities/x") as r:
                await r.read()
                return r.status

        base_url = f"http://127.0.0.1:{base_port}"
        await drive("warm-up", base_url, fixed, clients=clients, total=200)
        ref = await drive("baseline (fixed JSON)", base_url, fixed, clients=clients, total=total)
        with tempfile.TemporaryDirectory() as tmp:
            configs: list[tuple[str, Callable[[], str], int]] = [
                ("SQLite, 1 worker", lambda: f"sqlite:///{Path(tmp) / 'w1.db'}", 1),
                ("SQLite, 2 workers", lambda: f"sqlite:///{Path(tmp) / 'w2.db'}", 2),
                ("PostgreSQL, 1 worker", postgres, 1),
                ("PostgreSQL, 2 workers", postgres, 2),
            ]
            first: list[Result] | None = None
            lines.append(f"{clients} concurrent clients, {total} requests per workload")
            lines.append(ref.line())
            for label, store_of, workers in configs:
                store = store_of()
                if not store.startswith("sqlite"):
                    await _admin(pg_admin, f'CREATE DATABASE "{store}"')
                    store = pg_admin.rsplit("/", 1)[0] + "/" + store
                results = await measure(store, workers, clients, total)
                first = first or results
                lines.append(f"-- {label}")
                for result, sqlite1 in zip(results, first, strict=True):
                    lines.append(f"{result.line(ref)}  vs SQLite/1 "
                                 f"{result.rps / sqlite1.rps:5.2f}x")
    finally:
        baseline.terminate()
        baseline.wait(timeout=30)
        for name in databases:
            await _admin(pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server to create the bench databases on")
    args = parser.parse_args()
    for line in asyncio.run(run(args.clients, args.requests, args.pg)):
        print(line)


if __name__ == "__main__":
    main()
