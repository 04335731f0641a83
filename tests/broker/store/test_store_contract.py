"""The store protocol's contract: every engine in conftest.ENGINES passes this suite."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from broker.errors import AlreadyExists, InternalError, ResourceNotFound
from broker.store.open import open_store
from broker.store.protocol import Entity, Store, StoredContext

T0 = "2026-11-23T10:00:00.000Z"
T1 = "2026-11-23T11:00:00.000Z"
D = "https://uri.etsi.org/ngsi-ld/default-context/"
CORE = "https://uri.etsi.org/ngsi-ld/"
LOCATION = CORE + "location"
COUNT = D + "count"

Peek = Callable[[str, Sequence[Any]], Awaitable[list[tuple[Any, ...]]]]  # conftest's `peek`


def lamp_id(n: int) -> str:
    return f"urn:ngsi-ld:Streetlight:{n}"


def lamp(n: int, value: Any = 1) -> Entity:
    """A streetlight in internal form (docs/internals.md)."""
    return {"id": lamp_id(n), "type": [D + "Streetlight"], "scope": ["/Craiova/Centru"],
            "createdAt": T0, "modifiedAt": T0,
            "attrs": {COUNT: [{"type": "Property", "value": value}],
                      LOCATION: [{"type": "GeoProperty",
                                  "value": {"type": "Point", "coordinates": [23.79, 44.31]}}]}}


def put(entity: Entity) -> Any:
    def create(current: Entity | None) -> tuple[Entity, str]:
        if current is not None:
            raise AlreadyExists(entity["id"])
        return entity, "created"
    return create


def increment(current: Entity | None) -> tuple[Entity, int]:
    if current is None:
        raise ResourceNotFound("no such lamp")
    value = current["attrs"][COUNT][0]["value"] + 1
    return {**current, "modifiedAt": T1,
            "attrs": {**current["attrs"], COUNT: [{"type": "Property", "value": value}]}}, value


def delete(current: Entity | None) -> tuple[None, bool]:
    return None, current is not None


def count_of(entity: Entity | None) -> Any:
    assert entity is not None
    return entity["attrs"][COUNT][0]["value"]


async def test_create_read_update_delete(store: Store) -> None:
    assert await store.apply("", lamp_id(1), put(lamp(1))) == "created"
    assert await store.get_entity("", lamp_id(1)) == lamp(1)
    assert await store.apply("", lamp_id(1), increment) == 2
    assert count_of(await store.get_entity("", lamp_id(1))) == 2
    assert await store.apply("", lamp_id(1), delete) is True
    assert await store.get_entity("", lamp_id(1)) is None
    assert await store.apply("", lamp_id(1), delete) is False


async def test_failed_mutation_writes_nothing(store: Store) -> None:
    await store.apply("", lamp_id(1), put(lamp(1)))
    with pytest.raises(AlreadyExists):
        await store.apply("", lamp_id(1), put(lamp(1, value=99)))
    assert count_of(await store.get_entity("", lamp_id(1))) == 1
    with pytest.raises(ResourceNotFound):
        await store.apply("", lamp_id(2), increment)
    assert await store.get_entity("", lamp_id(2)) is None


async def test_failed_mutation_creates_no_tenant(store: Store) -> None:
    with pytest.raises(ResourceNotFound):
        await store.apply("timisoara", lamp_id(1), increment)
    assert not await store.tenant_exists("timisoara")


async def test_apply_many_each_atomic(store: Store) -> None:
    await store.apply("", lamp_id(2), put(lamp(2)))
    results = await store.apply_many("", [(lamp_id(n), put(lamp(n))) for n in (1, 2, 3)])
    assert results[0] == "created" and results[2] == "created"
    assert isinstance(results[1], AlreadyExists)
    found = await store.get_entities("", [lamp_id(n) for n in (1, 2, 3, 4)])
    assert sorted(e["id"] for e in found) == [lamp_id(n) for n in (1, 2, 3)]
    assert count_of(await store.get_entity("", lamp_id(2))) == 1


async def test_apply_many_on_one_entity_runs_in_order(store: Store) -> None:
    await store.apply("", lamp_id(1), put(lamp(1, value=0)))
    results = await store.apply_many("", [(lamp_id(1), increment)] * 5)
    assert results == [1, 2, 3, 4, 5]


async def test_concurrent_updates_lose_nothing(store: Store) -> None:
    await store.apply("", lamp_id(1), put(lamp(1, value=0)))
    results = await asyncio.gather(*(store.apply("", lamp_id(1), increment) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert count_of(await store.get_entity("", lamp_id(1))) == 50


async def test_get_entities_many_and_duplicates(store: Store) -> None:
    await store.apply_many("", [(lamp_id(n), put(lamp(n))) for n in range(1200)])
    wanted = [lamp_id(n) for n in range(0, 2400, 2)] + [lamp_id(0)]
    found = await store.get_entities("", wanted)
    assert sorted(e["id"] for e in found) == sorted(lamp_id(n) for n in range(0, 1200, 2))
    assert await store.get_entities("", []) == []


async def test_tenants_isolated(store: Store) -> None:
    assert await store.tenant_exists("")
    assert not await store.tenant_exists("craiova")
    await store.apply("craiova", lamp_id(1), put(lamp(1)))
    assert await store.tenant_exists("craiova")
    assert not await store.tenant_exists("cluj")
    assert await store.get_entity("", lamp_id(1)) is None
    assert await store.get_entities("cluj", [lamp_id(1)]) == []
    await store.apply("cluj", lamp_id(1), put(lamp(1, value=7)))
    assert count_of(await store.get_entity("craiova", lamp_id(1))) == 1
    assert count_of(await store.get_entity("cluj", lamp_id(1))) == 7
    await store.apply("cluj", lamp_id(1), delete)
    assert await store.get_entity("craiova", lamp_id(1)) is not None
    assert await store.tenant_exists("cluj")  # a tenant outlives its entities


async def test_contexts(store: Store) -> None:
    ctx = StoredContext(id="urn:ngsi-ld:jsonldContext:1", url="https://ex.org/c.jsonld",
                        kind="Cached", body={"@context": {"a": "https://ex.org/a"}},
                        created_at=T0)
    hosted = StoredContext(id="urn:ngsi-ld:jsonldContext:2", url="http://broker/c/2",
                           kind="Hosted", body={"@context": ["https://ex.org/c.jsonld"]},
                           created_at=T1)
    await store.put_context(ctx)
    await store.put_context(hosted)
    assert await store.get_context(ctx.id) == ctx
    assert await store.get_context(ctx.url) == ctx
    assert await store.get_context("urn:ngsi-ld:jsonldContext:none") is None
    assert await store.list_contexts("Cached") == [ctx]
    assert await store.list_contexts() == [ctx, hosted]
    assert await store.list_contexts("ImplicitlyCreated") == []
    await store.touch_context(ctx.id, T1)  # best effort: must not fail
    replaced = StoredContext(id=ctx.id, url=ctx.url, kind="Cached", body={"@context": {}},
                             created_at=T0, last_used_at=T1, number_of_hits=3)
    await store.put_context(replaced)
    assert await store.get_context(ctx.id) == replaced
    assert await store.delete_context(ctx.id)
    assert not await store.delete_context(ctx.id)
    assert await store.get_context(ctx.id) is None
    assert await store.list_contexts() == [hosted]


async def test_derived_rows_follow_the_document(store: Store, peek: Peek, engine: Any) -> None:
    entity = lamp(1)
    entity["type"].append(D + "Lamp")
    entity["attrs"][D + "feeds"] = [
        {"type": "Relationship", "object": "urn:ngsi-ld:Cabinet:7", "datasetId": "urn:ds:a",
         D + "since": {"type": "Property", "value": "2020"}}]
    await store.apply("", lamp_id(1), put(entity))
    await store.apply("", lamp_id(2), put(lamp(2)))

    async def rows_of(n: int) -> set[tuple[Any, ...]]:
        return set(await peek(
            "SELECT a.name, a.dataset_id, a.value_num, a.value_text, a.object FROM attrs a "
            "JOIN entities e ON e.rid = a.rid WHERE e.id = ?", [lamp_id(n)]))

    assert await rows_of(1) >= {(COUNT, "", 1.0, None, None),
                                (D + "feeds", "urn:ds:a", None, None, "urn:ngsi-ld:Cabinet:7"),
                                (D + "feeds." + D + "since", "urn:ds:a", None, "2020", None)}
    assert set(await peek("SELECT type FROM entity_types", [])) == {
        (D + "Streetlight",), (D + "Lamp",)}
    await store.apply("", lamp_id(1), increment)
    assert (COUNT, "", 2.0, None, None) in await rows_of(1)
    assert (COUNT, "", 1.0, None, None) not in await rows_of(1)
    assert (COUNT, "", 1.0, None, None) in await rows_of(2)  # the neighbour is untouched
    assert await peek("SELECT count(*) FROM geo_index", []) == [(2,)]
    await store.apply("", lamp_id(1), delete)
    assert await rows_of(1) == set()
    assert await peek("SELECT count(*) FROM entity_types", []) == [(1,)]
    assert await peek("SELECT count(*) FROM entity_scopes", []) == [(1,)]
    assert await peek("SELECT count(*) FROM geo_index", []) == [(1,)]
    assert await peek(f"SELECT count(*) FROM {engine.spatial_rows}", []) == [(1,)]


async def test_close_completes_queued_writes_and_reopen_finds_them(store_url: str) -> None:
    s = open_store(store_url)
    await s.open()
    writes = [asyncio.ensure_future(s.apply("", lamp_id(n), put(lamp(n)))) for n in range(100)]
    await asyncio.sleep(0)  # every write is queued, none is answered yet
    assert not any(w.done() for w in writes)
    await s.close()
    assert all(w.done() and w.result() == "created" for w in writes)
    await s.close()  # idempotent
    assert not await s.healthy()
    with pytest.raises(InternalError):
        await s.apply("", lamp_id(999), put(lamp(999)))
    with pytest.raises(InternalError):
        await s.get_entity("", lamp_id(1))

    again = open_store(store_url)
    await again.open()
    try:
        assert await again.healthy()
        found = await again.get_entities("", [lamp_id(n) for n in range(100)])
        assert sorted(found, key=lambda e: int(e["id"].rsplit(":", 1)[1])) == [
            lamp(n) for n in range(100)]
    finally:
        await again.close()
