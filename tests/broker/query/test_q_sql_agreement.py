"""The SQL compiled from q (broker/store/sqlite_query.py) agrees with the reference evaluator
(qlang.matches) on random entities and random queries, on a real SQLite store."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from broker.errors import BadRequestData
from broker.query.qlang import (
    And,
    Compare,
    DateTime,
    Exists,
    Node,
    NotExists,
    Or,
    Range,
    Uri,
    ValueList,
    expand_names,
    matches,
    parse_q,
    unparse,
)
from broker.query.qlang import Path as QPath
from broker.query.typeexpr import TypeName
from broker.store.protocol import EntityQuery
from broker.store.sqlite import SQLiteStore

D = "https://uri.etsi.org/ngsi-ld/default-context/"
SUB = D + "s"
INSTANTS = ["2026-11-23T10:00:00.000Z", "2026-11-23T12:30:00.000Z", "2026-11-24T00:00:00.000Z"]
TEXTS = ["x", "on", "On", "2026-11-23T10:00:00Z", "2026-11-23", "10:00:00", "urn:x:1", ""]
OBJECTS = ["urn:x:1", "urn:x:2"]


def expand(name: str) -> str:
    return name if ":" in name else D + name


# -- random entities -------------------------------------------------------------------------

SCALARS = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0]), st.booleans(),
                    st.sampled_from(TEXTS))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.fixed_dictionaries({"k": SCALARS}, optional={"m": st.fixed_dictionaries(
                       {"n": SCALARS})}))
META = st.fixed_dictionaries({}, optional={
    "observedAt": st.sampled_from(INSTANTS), "unitCode": st.sampled_from(["CEL", "KMH"]),
    "createdAt": st.sampled_from(INSTANTS), "modifiedAt": st.sampled_from(INSTANTS),
    SUB: st.builds(lambda v: {"type": "Property", "value": v}, SCALARS)})
KINDS = st.one_of(
    st.builds(lambda v: {"type": "Property", "value": v}, VALUES),
    st.builds(lambda o: {"type": "Relationship", "object": o},
              st.one_of(st.sampled_from(OBJECTS), st.lists(st.sampled_from(OBJECTS),
                                                           min_size=1, max_size=2))),
    st.builds(lambda v: {"type": "ListProperty", "valueList": v}, st.lists(SCALARS, max_size=3)),
    st.builds(lambda en, ro: {"type": "LanguageProperty", "languageMap": {"en": en, "ro": ro}},
              st.sampled_from(TEXTS), st.sampled_from(TEXTS)),
)
INSTANCE = st.builds(lambda kind, meta: {**kind, **meta}, KINDS, META)


def _instances(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The second instance, if any, has a datasetId (no two instances share one).
    return [items[0], *({**i, "datasetId": f"urn:ds:{n}"} for n, i in enumerate(items[1:]))]


ATTRS = st.dictionaries(st.sampled_from(["a", "b", "c"]),
                        st.lists(INSTANCE, min_size=1, max_size=2).map(_instances), max_size=3)
ENTITIES = st.lists(ATTRS, min_size=1, max_size=4)


def entity(n: int, attrs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:T:{n}", "type": [D + "T"], "createdAt": INSTANTS[0],
            "modifiedAt": INSTANTS[0], "attrs": {D + k: v for k, v in attrs.items()}}


# -- random queries --------------------------------------------------------------------------

LITERALS = st.one_of(
    st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0]), st.booleans(),
    st.sampled_from(TEXTS),
    st.sampled_from([DateTime("2026-11-23T10:00:00Z"), DateTime("2026-11-23T12:30:00+02:00"),
                     DateTime("2026-11-23"), DateTime("2026-11-24"), DateTime("10:00:00")]),
    st.sampled_from([Uri(o) for o in OBJECTS]))
ORDERABLE = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, "on", "x", "2026-11-23"]),
                      st.sampled_from([DateTime("2026-11-23T11:00:00Z"),
                                       DateTime("2026-11-23")]))
RANGES = st.one_of(
    st.builds(Range, st.integers(-3, 1), st.integers(0, 3)),
    st.builds(Range, st.just("a"), st.sampled_from(["on", "z"])),
    st.just(Range(DateTime("2026-11-23T00:00:00Z"), DateTime("2026-11-23T11:00:00Z"))))
PATHS = st.builds(
    QPath, st.sampled_from(["a", "b", "c", "nothing"]), st.sampled_from([None, None, "s"]),
    st.sampled_from([(), (), ("k",), ("m", "n")]),
    st.sampled_from([None, None, None, "observedAt", "createdAt", "modifiedAt", "unitCode",
                     "datasetId"])).filter(lambda p: not (p.keys and p.member))


def _compare(path: QPath, op: str, value: Any) -> Compare:
    return Compare(path, op, value)


LEAVES = st.one_of(
    st.builds(Exists, PATHS), st.builds(NotExists, PATHS),
    st.builds(_compare, PATHS, st.sampled_from(["==", "!="]),
              st.one_of(LITERALS, RANGES, st.builds(lambda xs: ValueList(tuple(xs)),
                                                    st.lists(LITERALS, min_size=2,
                                                             max_size=3)))),
    st.builds(_compare, PATHS, st.sampled_from([">", ">=", "<", "<="]), ORDERABLE),
    st.builds(_compare, PATHS, st.sampled_from(["~=", "!~="]),
              st.sampled_from(["x", "^o", "n$", "2026", "(?i)ON", "urn"])),
)
QUERIES: st.SearchStrategy[Node] = st.recursive(LEAVES, lambda kids: st.one_of(
    st.builds(lambda xs: And(tuple(xs)), st.lists(kids, min_size=2, max_size=3)),
    st.builds(lambda xs: Or(tuple(xs)), st.lists(kids, min_size=2, max_size=3))),
    max_leaves=4)


# -- the store -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SQLiteStore, Any]]:
    path: Path = tmp_path_factory.mktemp("agree") / "q.db"
    store = SQLiteStore(str(path), synchronous="OFF", readers=1)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(store.open())
    yield store, loop
    loop.run_until_complete(store.close())
    loop.close()


_TENANTS = itertools.count()


def _put(e: dict[str, Any]) -> Any:
    return lambda _: (e, None)


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(attrs=ENTITIES, tree=QUERIES)
def test_sql_agrees_with_the_reference_evaluator(world: tuple[SQLiteStore, Any],
                                                 attrs: list[dict[str, Any]], tree: Node) -> None:
    store, loop = world
    tenant = f"t{next(_TENANTS)}"  # a fresh tenant: the example's entities only
    entities = [entity(n, a) for n, a in enumerate(attrs)]
    results = loop.run_until_complete(store.apply_many(tenant, [(e["id"], _put(e))
                                                                for e in entities]))
    assert all(r is None for r in results), results
    query = expand_names(parse_q(unparse(tree)), expand)
    note(f"q = {unparse(tree)}")
    expected = [e["id"] for e in entities if matches(query, e)]
    for e in entities:
        note(f"{e['id']}: {e['attrs']}")
    # Alone, q's leaves drive the SQL (index ranges); beside a type, they are probes.
    for compiled in (EntityQuery(q=query, limit=100),
                     EntityQuery(q=query, types=TypeName(D + "T"), limit=100)):
        try:
            got = loop.run_until_complete(store.query_entities(tenant, compiled))
        except BadRequestData:
            return  # a query the SQL refuses is a 400, never a 500
        assert [e["id"] for e in got.entities] == expected
