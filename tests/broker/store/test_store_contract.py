"""The store protocol's contract: every engine passes this suite."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.errors import AlreadyExists
from broker.store.open import open_store
from broker.store.protocol import Entity, Store, StoredContext

T0 = "2026-11-23T10:00:00.000Z"
D = "https://uri.etsi.org/ngsi-ld/default-context/"


def lamp(n: int, value: Any = 1) -> Entity:
    return {"id": f"urn:ngsi-ld:Streetlight:{n}", "type": [D + "Streetlight"],
            "createdAt": T0, "modifiedAt": T0,
            "attrs": {D + "count": [{"type": "Property", "value": value}],
                      "https://uri.etsi.org/ngsi-ld/location": [{
                          "type": "GeoProperty",
                          "value": {"type": "Point", "coordinates": [23.79, 44.31]}}]}}


def put(entity: Entity) -> Any:
    def create(current: Entity | None) -> tuple[Entity, str]:
        if current is not None:
            raise AlreadyExists(entity["id"])
        return entity, "created"
    return create


def increment(current: Entity | None) -> tuple[Entity, int]:
    assert current is not None
    value = current["attrs"][D + "count"][0]["value"] + 1
    return {**current, "attrs": {**current["attrs"],
                                 D + "count": [{"type": "Property", "value": value}]}}, value


def delete(current: Entity | None) -> tuple[None, bool]:
    return None, current is not None


async def test_create_read_update_delete(store: Store) -> None:
    assert await store.apply("", "urn:ngsi-ld:Streetlight:1", put(lamp(1))) == "created"
    assert await store.get_entity("", "urn:ngsi-ld:Streetlight:1") == lamp(1)
    assert await store.apply("", "urn:ngsi-ld:Streetlight:1", increment) == 2
    got = await store.get_entity("", "urn:ngsi-ld:Streetlight:1")
    assert got is not None and got["attrs"][D + "count"][0]["value"] == 2
    assert await store.apply("", "urn:ngsi-ld:Streetlight:1", delete) is True
    assert await store.get_entity("", "urn:ngsi-ld:Streetlight:1") is None
    assert await store.apply("", "urn:ngsi-ld:Streetlight:1", delete) is False


async def test_failed_mutation_writes_nothing(store: Store) -> None:
    await store.apply("", "urn:ngsi-ld:Streetlight:1", put(lamp(1)))
    with pytest.raises(AlreadyExists):
        await store.apply("", "urn:ngsi-ld:Streetlight:1", put(lamp(1, value=99)))
    got = await store.get_entity("", "urn:ngsi-ld:Streetlight:1")
    assert got is not None and got["attrs"][D + "count"][0]["value"] == 1


async def test_apply_many_each_atomic(store: Store) -> None:
    await store.apply("", "urn:ngsi-ld:Streetlight:2", put(lamp(2)))
    results = await store.apply_many("", [(f"urn:ngsi-ld:Streetlight:{n}", put(lamp(n)))
                                          for n in (1, 2, 3)])
    assert results[0] == "created" and results[2] == "created"
    assert isinstance(results[1], AlreadyExists)
    found = await store.get_entities("", [f"urn:ngsi-ld:Streetlight:{n}" for n in (1, 2, 3, 4)])
    assert sorted(e["id"] for e in found) == [f"urn:ngsi-ld:Streetlight:{n}" for n in (1, 2, 3)]


async def test_concurrent_updates_lose_nothing(store: Store) -> None:
    await store.apply("", "urn:ngsi-ld:Streetlight:1", put(lamp(1, value=0)))
    await asyncio.gather(*(store.apply("", "urn:ngsi-ld:Streetlight:1", increment)
                           for _ in range(50)))
    got = await store.get_entity("", "urn:ngsi-ld:Streetlight:1")
    assert got is not None and got["attrs"][D + "count"][0]["value"] == 50


async def test_tenants_isolated(store: Store) -> None:
    assert await store.tenant_exists("")
    assert not await store.tenant_exists("craiova")
    await store.apply("craiova", "urn:ngsi-ld:Streetlight:1", put(lamp(1)))
    assert await store.tenant_exists("craiova")
    assert await store.get_entity("", "urn:ngsi-ld:Streetlight:1") is None
    assert await store.get_entity("cluj", "urn:ngsi-ld:Streetlight:1") is None
    await store.apply("cluj", "urn:ngsi-ld:Streetlight:1", put(lamp(1, value=7)))
    a = await store.get_entity("craiova", "urn:ngsi-ld:Streetlight:1")
    b = await store.get_entity("cluj", "urn:ngsi-ld:Streetlight:1")
    assert a and b and a["attrs"] != b["attrs"]


async def test_contexts(store: Store) -> None:
    ctx = StoredContext(id="urn:ngsi-ld:jsonldContext:1", url="https://ex.org/c.jsonld",
                        kind="Cached", body={"@context": {"a": "https://ex.org/a"}},
                        created_at=T0)
    await store.put_context(ctx)
    assert await store.get_context(ctx.id) == ctx
    assert await store.get_context(ctx.url) == ctx
    assert await store.list_contexts("Cached") == [ctx]
    assert await store.list_contexts("Hosted") == []
    await store.touch_context(ctx.id, T0)
    assert await store.delete_context(ctx.id)
    assert not await store.delete_context(ctx.id)
    assert await store.get_context(ctx.id) is None


async def test_close_completes_queued_writes_and_reopen(store_url: str) -> None:
    s = open_store(store_url)
    await s.open()
    writes = [asyncio.ensure_future(s.apply("", f"urn:ngsi-ld:Streetlight:{n}", put(lamp(n))))
              for n in range(100)]
    await asyncio.sleep(0)
    await asyncio.gather(*writes)
    await s.close()
    await s.close()  # idempotent
    again = open_store(store_url)
    await again.open()
    try:
        found = await again.get_entities("", [f"urn:ngsi-ld:Streetlight:{n}" for n in range(100)])
        assert len(found) == 100
        assert await again.healthy()
    finally:
        await again.close()
