"""The access layer's type conditions (broker/query/typeexpr.py NoneOf and Within, compiled in
broker/store/sql_compile.py) select on both engines exactly the entities the reference
evaluation `type_matches` selects, alone and combined with the query language's own."""

from __future__ import annotations

import itertools
from typing import Any

from broker.query.typeexpr import AllOf, AnyOf, NoneOf, TypeExpr, TypeName, Within, type_matches
from broker.store.protocol import Entity, EntityQuery, Store
from tests.broker.store.test_store_contract import T0, put

D = "https://uri.etsi.org/ngsi-ld/default-context/"
A, B, C = D + "A", D + "B", D + "C"
TYPE_SETS = [[A], [B], [C], [A, B], [A, C], [B, C], [A, B, C]]


def entity(n: int, types: list[str]) -> Entity:
    return {"id": f"urn:ngsi-ld:X:{n}", "type": types, "createdAt": T0, "modifiedAt": T0,
            "attrs": {}}


EXPRESSIONS: list[TypeExpr] = [
    NoneOf((TypeName(B),)), NoneOf((TypeName(B), TypeName(C))), Within((A,)), Within((A, B)),
    Within(()), AllOf((AnyOf((TypeName(A), TypeName(B))), NoneOf((TypeName(C),)))),
    AllOf((TypeName(A), Within((A, C)))), NoneOf((AllOf((TypeName(A), TypeName(B))),)),
]


async def test_exclusions_agree_with_the_reference(store: Store) -> None:
    entities = [entity(n, types) for n, types in enumerate(TYPE_SETS)]
    for e in entities:
        await store.apply("", e["id"], put(e))
    for expr, count in itertools.product(EXPRESSIONS, (False, True)):
        found = await store.query_entities("", EntityQuery(types=expr, limit=100, count=count))
        expected = sorted(e["id"] for e in entities if type_matches(expr, e["type"]))
        got: Any = sorted(e["id"] for e in found.entities)
        assert got == expected, expr
        if count:
            assert found.total == len(expected), expr
