"""Queries and batch upsert on a large store, against a bare aiohttp baseline, in one run.

    .venv/bin/python -m bench.query [--entities 100000] [--clients 8] [--requests 1000]

Loads N entities of 10 types (six properties, one of them with two datasetId instances, one
relationship, one GeoProperty each) straight through the store's apply_many (timed), starts a
real broker on that file, and measures with a fixed number of concurrent clients:
query by type and two q conditions, by type and relationship object, geo near with
maxDistance, discovery (/types, /types/{type}, /attributes/{id}, /types?details=true), and
batch upsert throughput. Prints requests/s, p50/p95, the ratio to the
baseline measured in the same run, and the SQLite query plan of each query workload.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.common import Result, drive, free_port, start
from broker.query.geo import parse_geo_query
from broker.query.qlang import expand_names, parse_q
from broker.query.typeexpr import TypeName
from broker.store.protocol import EntityQuery
from broker.store.sqlite import SQLiteStore
from broker.store.sqlite_query import compile_where

D = "https://uri.etsi.org/ngsi-ld/default-context/"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
TYPES = 10
GROUPS = 500
STATUSES = ("free", "occupied", "reserved", "closed")
T0 = "2026-11-23T10:00:00.000Z"
LOAD_CHUNK = 2000  # entities per apply_many call while loading
BATCH = 100  # entities per batch upsert request
# Craiova and around: about 16 km by 11 km.
LON0, LAT0, LON_SPAN, LAT_SPAN = 23.70, 44.26, 0.2, 0.1


def type_name(t: int) -> str:
    return f"BenchType{t}"


def entity_id(i: int) -> str:
    return f"urn:ngsi-ld:{type_name(i % TYPES)}:{i}"


def position(i: int) -> list[float]:
    rng = random.Random(i)
    return [round(LON0 + rng.random() * LON_SPAN, 6), round(LAT0 + rng.random() * LAT_SPAN, 6)]


def values(i: int) -> dict[str, Any]:
    # Names outside the core @context ("status" is a core term), so that HTTP queries with the
    # core context expand them to the default-context IRIs the loader writes.
    return {"level": i % 1000, "availability": STATUSES[i % len(STATUSES)],
            "enabled": i % 2 == 0,
            "ratio": (i % 100) / 100, "multi": (i % 50, i % 70),
            "info": {"zone": f"Z{i % 20}", "floor": i % 5},
            "group": f"urn:ngsi-ld:Group:{i % GROUPS}"}


def internal(i: int) -> dict[str, Any]:
    """Entity i in the store's internal form (docs/internals.md)."""
    v = values(i)

    def prop(value: Any, **extra: Any) -> dict[str, Any]:
        return {"type": "Property", "value": value, "createdAt": T0, "modifiedAt": T0, **extra}

    return {"id": entity_id(i), "type": [D + type_name(i % TYPES)], "createdAt": T0,
            "modifiedAt": T0, "attrs": {
                D + "level": [prop(v["level"])], D + "availability": [prop(v["availability"])],
                D + "enabled": [prop(v["enabled"])], D + "ratio": [prop(v["ratio"])],
                D + "multi": [prop(v["multi"][0]),
                              prop(v["multi"][1], datasetId="urn:ngsi-ld:Dataset:b")],
                D + "info": [prop(v["info"])],
                D + "refGroup": [{"type": "Relationship", "object": v["group"],
                                  "createdAt": T0, "modifiedAt": T0}],
                LOCATION: [{"type": "GeoProperty", "createdAt": T0, "modifiedAt": T0,
                            "value": {"type": "Point", "coordinates": position(i)}}]}}


def normalized(i: int, bump: int) -> dict[str, Any]:
    """Entity i as a client sends it in a batch upsert (NGSI-LD normalized form)."""
    v = values(i + bump)
    return {"id": entity_id(i), "type": type_name(i % TYPES),
            "level": {"type": "Property", "value": v["level"]},
            "availability": {"type": "Property", "value": v["availability"]},
            "enabled": {"type": "Property", "value": v["enabled"]},
            "ratio": {"type": "Property", "value": v["ratio"]},
            "multi": [{"type": "Property", "value": v["multi"][0]},
                      {"type": "Property", "value": v["multi"][1],
                       "datasetId": "urn:ngsi-ld:Dataset:b"}],
            "info": {"type": "Property", "value": v["info"]},
            "refGroup": {"type": "Relationship", "object": v["group"]},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": position(i)}}}


async def load(path: str, count: int) -> float:
    """Write `count` entities through apply_many; the seconds it took."""
    store = SQLiteStore(path, synchronous="NORMAL")
    await store.open()
    started = time.perf_counter()
    try:
        for start_at in range(0, count, LOAD_CHUNK):
            changes = [(entity_id(i), _put(internal(i)))
                       for i in range(start_at, min(count, start_at + LOAD_CHUNK))]
            failed = [r for r in await store.apply_many("", changes) if r is not None]
            if failed:
                raise RuntimeError(f"load failed: {failed[0]!r}")
        return time.perf_counter() - started
    finally:
        await store.close()


def _put(entity: dict[str, Any]) -> Any:
    return lambda _: (entity, None)


# -- workloads --------------------------------------------------------------------------------

def q_two_conditions(i: int) -> str:
    t = i % TYPES
    return (f"/ngsi-ld/v1/entities?type={type_name(t)}&q="
            + quote(f'level>{(i * 7) % 900};availability=="{STATUSES[i % 4]}"'))


def q_relationship(i: int) -> str:
    group = (i * 13) % GROUPS
    return (f"/ngsi-ld/v1/entities?type={type_name(group % TYPES)}&q="
            + quote(f"refGroup==urn:ngsi-ld:Group:{group}"))


def geo_near(i: int) -> str:
    lon, lat = position(10_000_000 + i)
    return (f"/ngsi-ld/v1/entities?type={type_name(i % TYPES)}&georel="
            + quote("near;maxDistance==300") + "&geometry=Point&coordinates="
            + quote(f"[{lon},{lat}]"))


def plans(path: str) -> list[str]:
    """EXPLAIN QUERY PLAN of one query of each workload, as the store compiles it."""
    conn = sqlite3.connect(path)
    conn.create_function("regexp", 2, lambda p, v: False)
    t = D + type_name(3)
    queries = {
        "type + two q": EntityQuery(types=TypeName(t), q=expand_names(
            parse_q('level>500;availability=="free"'), lambda n: D + n)),
        "type + relationship": EntityQuery(types=TypeName(t), q=expand_names(
            parse_q("refGroup==urn:ngsi-ld:Group:3"), lambda n: D + n)),
        "geo near": EntityQuery(types=TypeName(t), geo=_geo()),
    }
    lines = []
    for name, query in queries.items():
        compiled = compile_where("", query)
        sql = f"SELECT e.doc FROM entities e WHERE {compiled.where} ORDER BY e.rid LIMIT 20"
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, compiled.params).fetchall()
        lines.append(f"plan, {name}:")
        lines.extend(f"    {row[-1]}" for row in rows)
    conn.close()
    return lines


def _geo() -> Any:
    from dataclasses import replace
    geo = parse_geo_query("near;maxDistance==300", "Point", "[23.8,44.31]", None)
    return replace(geo, geoproperty=LOCATION)


async def run(entities: int, clients: int, total: int, batches: int) -> list[str]:
    lines: list[str] = []
    base_port, broker_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.db")
        seconds = await load(path, entities)
        lines.append(f"loaded {entities} entities of {TYPES} types via apply_many in "
                     f"{seconds:.1f} s ({entities / seconds:.0f} entities/s)")
        lines.extend(plans(path))
        baseline = start(["bench/baseline_server.py", str(base_port)], base_port)
        broker = start(["-m", "broker", "serve", "--port", str(broker_port), "--store",
                        f"sqlite:///{path}", "--log-level", "WARNING"], broker_port)
        try:
            def getter(url_of: Any) -> Any:
                async def request(s: aiohttp.ClientSession, i: int) -> int:
                    async with s.get(url_of(i)) as r:
                        await r.read()
                        return r.status
                return request

            async def upsert(s: aiohttp.ClientSession, i: int) -> int:
                first = (i * BATCH) % max(1, entities - BATCH)
                body = [normalized(n, i + 1) for n in range(first, first + BATCH)]
                async with s.post("/ngsi-ld/v1/entityOperations/upsert", json=body) as r:
                    await r.read()
                    return r.status

            base_url = f"http://127.0.0.1:{base_port}"
            broker_url = f"http://127.0.0.1:{broker_port}"
            fixed = getter(lambda i: "/ngsi-ld/v1/entities/x")
            await drive("warm-up", base_url, fixed, clients=clients, total=200)
            await drive("warm-up", broker_url, getter(q_two_conditions), clients=clients,
                        total=50)
            ref = await drive("baseline (fixed JSON)", base_url, fixed, clients=clients,
                              total=total)
            results: list[Result] = [
                await drive("type + two q conditions", broker_url, getter(q_two_conditions),
                            clients=clients, total=total),
                await drive("type + relationship", broker_url, getter(q_relationship),
                            clients=clients, total=total),
                await drive("geo near 300 m", broker_url, getter(geo_near), clients=clients,
                            total=total),
            ]
            discovery = [
                await drive("discovery /types", broker_url,
                            getter(lambda i: "/ngsi-ld/v1/types"), clients=clients,
                            total=max(10, total // 10)),
                await drive("discovery /types/{type}", broker_url,
                            getter(lambda i: f"/ngsi-ld/v1/types/{type_name(i % TYPES)}"),
                            clients=clients, total=max(10, total // 10)),
                await drive("discovery /attributes/{id}", broker_url,
                            getter(lambda i: "/ngsi-ld/v1/attributes/refGroup"),
                            clients=clients, total=max(10, total // 20)),
                await drive("discovery /types?details", broker_url,
                            getter(lambda i: "/ngsi-ld/v1/types?details=true"),
                            clients=clients, total=max(10, total // 50)),
            ]
            ups = await drive(f"batch upsert ({BATCH}/request)", broker_url, upsert,
                              clients=clients, total=batches)
            lines.append(f"sqlite, {entities} entities, {clients} concurrent clients, "
                         f"{total} requests per query workload, {batches} upserts")
            lines.append(ref.line())
            lines.extend(r.line(ref) for r in results)
            lines.extend(r.line(ref) for r in discovery)
            lines.append(ups.line(ref))
            lines.append(f"batch upsert throughput: {ups.rps * BATCH:.0f} entities/s")
        finally:
            for proc in (baseline, broker):
                proc.terminate()
                proc.wait(timeout=60)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=100, help="batch upsert requests")
    args = parser.parse_args()
    for line in asyncio.run(run(args.entities, args.clients, args.requests, args.batches)):
        print(line, flush=True)


if __name__ == "__main__":
    main()
