"""The q compiler in its PostgreSQL dialect (broker/store/sql_compile.py, postgres_query.py)
agrees with the reference evaluator (qlang.matches) on the random entities and queries that
check the SQLite compiler (tests/broker/query/test_q_sql_agreement.py), on a real PostgreSQL
store."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings

from broker.errors import BadRequestData
from broker.query.qlang import Node, expand_names, matches, parse_q, unparse
from broker.store.postgres import PostgresStore
from broker.store.protocol import EntityQuery
from tests.broker.query.test_q_sql_agreement import ENTITIES, QUERIES, _put, entity, expand
from tests.conftest import PostgresServer, _migrate

_TENANTS = itertools.count()


@pytest.fixture(scope="module")
def world(postgres_server: PostgresServer) -> Iterator[tuple[PostgresStore, Any]]:
    url = postgres_server.url(postgres_server.create_empty())
    asyncio.run(_migrate(url))
    store = PostgresStore(url, pool_min=1, pool_max=2)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(store.open())
    yield store, loop
    loop.run_until_complete(store.close())
    loop.close()


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(attrs=ENTITIES, tree=QUERIES)
def test_postgres_sql_agrees_with_the_reference_evaluator(
        world: tuple[PostgresStore, Any], attrs: list[dict[str, Any]], tree: Node) -> None:
    store, loop = world
    tenant = f"t{next(_TENANTS)}"  # a fresh tenant: the example's entities only
    entities = [entity(n, a) for n, a in enumerate(attrs)]
    results = loop.run_until_complete(store.apply_many(
        tenant, [(e["id"], _put(e)) for e in entities]))
    assert all(r is None for r in results), results
    query = expand_names(parse_q(unparse(tree)), expand)
    note(f"q = {unparse(tree)}")
    try:
        got = loop.run_until_complete(store.query_entities(tenant, EntityQuery(q=query,
                                                                               limit=100)))
    except BadRequestData:
        return  # refused as on SQLite: a 400, never a 500
    expected = [e["id"] for e in entities if matches(query, e)]
    for e in entities:
        note(f"{e['id']}: {e['attrs']}")
    assert [e["id"] for e in got.entities] == expected
