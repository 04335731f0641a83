"""PostgreSQL specifics: racing migrations, refused schemas, URLs, lock-order races between
replicas, unsupported patterns, and the same answers as SQLite for q, scopeQ and geo-queries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from broker.errors import BadRequestData
from broker.query.geo import parse_geo_query
from broker.query.qlang import expand_names, parse_q
from broker.query.scopeq import parse_scopeq
from broker.query.typeexpr import TypeName
from broker.store.migrate import MigrationError, available
from broker.store.open import migrate_store, open_store
from broker.store.postgres import ANALYZE_AFTER_WRITES, PostgresStore, split_url
from broker.store.protocol import Entity, EntityQuery, Store
from tests.broker.store.test_store_contract import (
    COUNT,
    LOCATION,
    T0,
    count_of,
    increment,
    lamp,
    lamp_id,
    put,
)
from tests.conftest import PostgresServer

D = "https://uri.etsi.org/ngsi-ld/default-context/"
LATEST = available("postgresql")[-1].version


@pytest.fixture
def empty_url(postgres_server: PostgresServer) -> str:
    """A database with nothing in it, not even the schema."""
    return postgres_server.url(postgres_server.create_empty())


async def test_replicas_starting_together_migrate_once(empty_url: str) -> None:
    stores = [PostgresStore(empty_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert await stores[0].read_sql("SELECT version FROM schema_migrations") == [
            (m.version,) for m in available("postgresql")]
        await stores[1].apply("", lamp_id(1), put(lamp(1)))
        assert await stores[3].get_entity("", lamp_id(1)) == lamp(1)
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert await migrate_store(empty_url) == []  # `cetate db migrate`: nothing left to do


async def test_migrate_command_then_no_migrate(empty_url: str) -> None:
    with pytest.raises(MigrationError, match="cetate db migrate"):
        await PostgresStore(empty_url, migrate=False).open()
    assert await migrate_store(empty_url) == [m.version for m in available("postgresql")]
    store = PostgresStore(empty_url, migrate=False)
    await store.open()
    assert await store.healthy()
    await store.close()


async def test_newer_schema_is_refused(empty_url: str) -> None:
    conn = await asyncpg.connect(empty_url)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                           "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        await conn.execute("INSERT INTO schema_migrations VALUES ($1, 'future.sql')", LATEST + 1)
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="newer"):
        await PostgresStore(empty_url).open()


def test_urls() -> None:
    dsn, options = split_url("postgresql://u@db:5433/cetate?pool_max=20&sslmode=disable")
    assert dsn == "postgresql://u@db:5433/cetate?sslmode=disable"
    assert options == {"pool_max": 20}
    store = open_store("postgres://u@db/cetate?pool_min=3&pool_max=4", migrate=False)
    assert isinstance(store, PostgresStore)
    assert (store.pool_min, store.pool_max, store.migrate) == (3, 4, False)
    with pytest.raises(ValueError, match="pool_max"):
        open_store("postgresql://u@db/cetate?pool_max=many")
    with pytest.raises(ValueError):
        open_store("postgresql://u@db/cetate?pool_min=5&pool_max=2")


async def test_unreachable_server() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/none")
    assert not await store.healthy()
    with pytest.raises(OSError):
        await store.open()


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(postgres_url)
    await s.open()
    yield s
    await s.close()


async def test_two_pools_lose_no_update(pg: PostgresStore, postgres_url: str) -> None:
    """Two replicas (two pools) incrementing one entity: the row lock serialises them."""
    other = PostgresStore(postgres_url)
    await other.open()
    try:
        await pg.apply("", lamp_id(1), put(lamp(1, value=0)))
        results = await asyncio.gather(*(s.apply("", lamp_id(1), increment)
                                         for _ in range(25) for s in (pg, other)))
        assert sorted(results) == list(range(1, 51))
        assert count_of(await other.get_entity("", lamp_id(1))) == 50
    finally:
        await other.close()


async def test_batches_in_opposite_orders_do_not_fail(pg: PostgresStore) -> None:
    """Two batches locking the same rows in opposite orders deadlock; the loser retries."""
    await pg.apply_many("", [(lamp_id(n), put(lamp(n, value=0))) for n in (1, 2)])
    forward = [(lamp_id(1), increment), (lamp_id(2), increment)]
    backward = list(reversed(forward))
    batches = await asyncio.gather(*(pg.apply_many("", forward if i % 2 else backward)
                                     for i in range(20)))
    assert all(not isinstance(r, Exception) for batch in batches for r in batch)
    assert count_of(await pg.get_entity("", lamp_id(1))) == 20
    assert count_of(await pg.get_entity("", lamp_id(2))) == 20


async def test_a_change_the_database_refuses_fails_alone(pg: PostgresStore) -> None:
    """The batch's fast path fails as a whole; the batch then runs change by change."""
    broken = {**lamp(2), "type": [None]}  # NOT NULL refuses it, after the entity row went in
    results = await pg.apply_many("lugoj", [(lamp_id(1), put(lamp(1))),
                                            (lamp_id(2), put(broken)),
                                            (lamp_id(3), put(lamp(3))),
                                            (lamp_id(1), increment)])
    assert results[0] == "created" and results[2] == "created" and results[3] == 2
    assert isinstance(results[1], asyncpg.NotNullViolationError)
    assert await pg.read_sql("SELECT id FROM entities WHERE tenant = 'lugoj' ORDER BY rid") == [
        (lamp_id(1),), (lamp_id(3),)]
    with pytest.raises(asyncpg.NotNullViolationError):
        await pg.apply("arad", lamp_id(2), put(broken))
    assert not await pg.tenant_exists("arad")
    assert await pg.read_sql("SELECT count(*) FROM attrs WHERE tenant = 'arad'") == [(0,)]


async def test_batch_and_single_creates_race(pg: PostgresStore, postgres_url: str) -> None:
    other = PostgresStore(postgres_url)
    await other.open()
    try:
        for round_ in range(5):
            ids = [lamp_id(round_ * 100 + n) for n in range(20)]
            batch, *singles = await asyncio.gather(
                pg.apply_many("", [(i, put(lamp(int(i.rsplit(":", 1)[1])))) for i in ids]),
                *(other.apply("", i, put(lamp(int(i.rsplit(":", 1)[1])))) for i in ids[::3]),
                return_exceptions=True)
            assert isinstance(batch, list)
            outcomes = dict(zip(ids, batch, strict=True))
            for i, single in zip(ids[::3], singles, strict=True):
                # Exactly one of the two creates of each entity won.
                assert (single == "created") != (outcomes[i] == "created")
            assert len(await pg.get_entities("", ids)) == 20
    finally:
        await other.close()


async def test_statistics_are_refreshed_after_many_writes(pg: PostgresStore) -> None:
    """A table grown from empty has no planner statistics until autovacuum's next round; the
    engine runs ANALYZE itself once ANALYZE_AFTER_WRITES writes have committed."""
    reltuples = "SELECT reltuples FROM pg_class WHERE oid = 'attrs'::regclass"
    await pg.read_sql("ANALYZE attrs")  # reads nothing: a baseline of 0 rows
    assert await pg.read_sql(reltuples) == [(0.0,)]
    await pg.apply_many("", [(lamp_id(n), put(lamp(n))) for n in range(ANALYZE_AFTER_WRITES)])
    assert pg._analyzing is not None
    await pg._analyzing
    assert await pg.read_sql(reltuples) == [(2.0 * ANALYZE_AFTER_WRITES,)]  # 2 attrs each


async def test_racing_creates_one_wins(pg: PostgresStore, postgres_url: str) -> None:
    other = PostgresStore(postgres_url)
    await other.open()
    try:
        results = await asyncio.gather(*(s.apply("", lamp_id(7), put(lamp(7)))
                                         for s in (pg, other) * 4), return_exceptions=True)
        assert results.count("created") == 1
        assert all(type(r).__name__ == "AlreadyExists" for r in results if r != "created")
    finally:
        await other.close()


async def test_pattern_postgres_cannot_run_is_a_bad_request(pg: PostgresStore) -> None:
    await pg.apply("", lamp_id(1), put(lamp(1)))
    with pytest.raises(BadRequestData):
        await pg.query_entities("", EntityQuery(id_pattern="(?P<n>Streetlight)"))
    found = await pg.query_entities("", EntityQuery(id_pattern=r"Streetlight:\d$"))
    assert [e["id"] for e in found.entities] == [lamp_id(1)]


# -- the same answers as SQLite ---------------------------------------------------------------

def _entity(n: int, attrs: dict[str, list[dict[str, Any]]], scope: list[str]) -> Entity:
    return {"id": f"urn:ngsi-ld:Thing:{n}", "type": [D + ("Thing" if n % 3 else "Other")],
            "scope": scope, "createdAt": T0, "modifiedAt": T0, "attrs": attrs}


def _prop(value: Any, **more: Any) -> list[dict[str, Any]]:
    return [{"type": "Property", "value": value, **more}]


def _geo(geometry: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "GeoProperty", "value": geometry}]


def corpus() -> list[Entity]:
    square = [[23.78, 44.30], [23.80, 44.30], [23.80, 44.32], [23.78, 44.32], [23.78, 44.30]]
    geometries = [
        {"type": "Point", "coordinates": [23.79, 44.31]},
        {"type": "Point", "coordinates": [23.80, 44.31]},  # on the square's border
        {"type": "Point", "coordinates": [23.85, 44.35]},
        {"type": "LineString", "coordinates": [[23.77, 44.31], [23.81, 44.31]]},
        {"type": "Polygon", "coordinates": [square]},
        {"type": "Point", "coordinates": [21.23, 45.75]},  # Timișoara
    ]
    values: list[Any] = [1, 2.5, "on", "off", True, [1, "a", "b"], {"k": {"j": 3}}, "2026-01-01",
                         None, 7]
    scopes = [["/Craiova/Centru"], ["/Craiova/Nord", "/Lighting"], [], ["/Timisoara"],
              ["/Craiova"], ["/Craiova/Centru/Piata"]]
    found = []
    for n in range(30):
        attrs: dict[str, list[dict[str, Any]]] = {
            LOCATION: _geo(geometries[n % len(geometries)])}
        value = values[n % len(values)]
        if value is not None:
            attrs[COUNT] = _prop(value, observedAt=f"2026-11-2{n % 10}T10:00:00.000Z")
        if n % 4 == 0:
            attrs[D + "feeds"] = [{"type": "Relationship", "object": f"urn:ngsi-ld:Cabinet:{n % 3}",
                                   D + "since": {"type": "Property", "value": n}}]
        if n % 5 == 0:
            attrs[D + "name"] = [{"type": "LanguageProperty",
                                  "languageMap": {"ro": "stâlp", "en": "lamp"}}]
        found.append(_entity(n, attrs, scopes[n % len(scopes)]))
    return found


Q_EXPRESSIONS = [
    "count==1", "count>2", "count<=2.5", "count==\"on\"", "count!=\"on\"", "count==\"a\"",
    "count==1..3", "count==\"on\",\"off\"", "count~=\"^o\"", "count!~=\"f$\"", "count",
    "!count", "count==true", "count.observedAt>=2026-11-25T00:00:00Z", "count[k.j]==3",
    "count[k.j]>2", "count[k]", "feeds==\"urn:ngsi-ld:Cabinet:1\"", "feeds.since>4",
    "(count>1;feeds)|name==\"lamp\"", "name==\"lamp\"", "count==\"2026-01-01\"",
]
SCOPE_QUERIES = ["/Craiova", "/Craiova/#", "/+/Centru", "/+/Centru/#", "/#", "/Lighting;/Craiova/#",
                 "/Timisoara|/Craiova/Nord"]
GEO_QUERIES = [
    ("near;maxDistance==2000", "Point", "[23.79,44.31]"),
    ("near;minDistance==1000", "Point", "[23.79,44.31]"),
    ("near;maxDistance==0", "Point", "[23.80,44.31]"),
    ("within", "Polygon", "[[[23.775,44.295],[23.805,44.295],[23.805,44.325],[23.775,44.325],"
                          "[23.775,44.295]]]"),
    ("intersects", "Point", "[23.80,44.31]"),
    ("contains", "Point", "[23.79,44.31]"),
    ("disjoint", "Point", "[23.79,44.31]"),
    ("overlaps", "Polygon", "[[[23.79,44.31],[23.82,44.31],[23.82,44.33],[23.79,44.33],"
                            "[23.79,44.31]]]"),
    ("equals", "Point", "[23.85,44.35]"),
]


def _queries() -> list[EntityQuery]:
    found = [EntityQuery(q=expand_names(parse_q(text), lambda t: D + t), limit=100)
             for text in Q_EXPRESSIONS]
    found += [EntityQuery(scope_q=parse_scopeq(text), limit=100) for text in SCOPE_QUERIES]
    for georel, geometry, coordinates in GEO_QUERIES:
        geo = parse_geo_query(georel, geometry, coordinates)
        assert geo is not None
        found.append(EntityQuery(geo=geo.__class__(**{**geo.__dict__, "geoproperty": LOCATION}),
                                 limit=100))
    found += [EntityQuery(types=TypeName(D + "Other"), attrs=frozenset({COUNT}), count=True),
              EntityQuery(id_pattern=r"Thing:1\d$", limit=5, offset=2, count=True),
              EntityQuery(ids=("urn:ngsi-ld:Thing:3", "urn:ngsi-ld:Thing:4", "urn:x:none"))]
    return found


async def _answers(store: Store) -> list[tuple[list[str], int | None]]:
    await store.apply_many("", [(e["id"], put(e)) for e in corpus()])
    found = []
    for query in _queries():
        result = await store.query_entities("", query)
        found.append(([e["id"] for e in result.entities], result.total))
    return found


async def test_same_answers_as_sqlite(pg: PostgresStore, tmp_path: Path) -> None:
    sqlite = open_store(f"sqlite:///{tmp_path}/same.db")
    await sqlite.open()
    try:
        expected = await _answers(sqlite)
    finally:
        await sqlite.close()
    got = await _answers(pg)
    labels = Q_EXPRESSIONS + SCOPE_QUERIES + [g[0] for g in GEO_QUERIES] + ["types", "ids"] * 2
    mismatches = [(label, e, g) for label, e, g in zip(labels, expected, got, strict=False)
                  if e != g]
    assert mismatches == []
    assert sum(1 for ids, _ in expected if ids) > len(expected) // 2  # the corpus bites
