"""scopeQ (clause 4.19): the pure parser and evaluator, and the SQL compiled from it agreeing
with the evaluator on a real SQLite store."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.query.scopeq import (
    Pattern,
    ScopeAnd,
    ScopeOr,
    ScopeQuerySyntaxError,
    matches,
    parse_scopeq,
    pattern_matches,
    regex,
    unparse,
)
from broker.store.protocol import EntityQuery
from broker.store.sqlite import SQLiteStore
from broker.store.sqlite_query import compile_scopeq

PARSED = [
    ("/Craiova", Pattern(("Craiova",))),
    ("/Craiova/Centru", Pattern(("Craiova", "Centru"))),
    ("/Craiova/+", Pattern(("Craiova", "+"))),
    ("/Craiova/#", Pattern(("Craiova",), subtree=True)),
    ("/#", Pattern((), subtree=True)),
    ("/+/Centru/#", Pattern(("+", "Centru"), subtree=True)),
    ("/a;/b", ScopeAnd((Pattern(("a",)), Pattern(("b",))))),
    ("/a|/b;/c", ScopeOr((Pattern(("a",)), ScopeAnd((Pattern(("b",)), Pattern(("c",))))))),
    ("(/a|/b);/c", ScopeAnd((ScopeOr((Pattern(("a",)), Pattern(("b",)))), Pattern(("c",))))),
    ("/Timișoara/Cetate", Pattern(("Timișoara", "Cetate"))),
]


@pytest.mark.parametrize(("text", "tree"), PARSED, ids=[p[0] for p in PARSED])
def test_parse(text: str, tree: object) -> None:
    assert parse_scopeq(text) == tree
    assert parse_scopeq(unparse(parse_scopeq(text))) == tree


BAD = [("", 0), ("Craiova", 0), ("/", 1), ("/a/", 3), ("/a//b", 3), ("/#/a", 2),
       ("/a#", 2), ("/a+", 2), ("/a/+b", 4), ("(/a", 3), ("/a)", 2), ("/a;", 3), ("/a b", 2),
       ("/a|", 3), ("((((((((((((((((((((((((((((((((((/a" + ")" * 34, 32)]


@pytest.mark.parametrize(("text", "position"), BAD, ids=[b[0][:12] or "empty" for b in BAD])
def test_bad_scopeq_points_at_the_error(text: str, position: int) -> None:
    with pytest.raises(ScopeQuerySyntaxError) as caught:
        parse_scopeq(text)
    assert caught.value.position == position
    assert caught.value.status == 400


MATCHING = [
    ("/Craiova", "/Craiova", True),
    ("/Craiova", "/Craiova/Centru", False),
    ("/Craiova/+", "/Craiova/Centru", True),
    ("/Craiova/+", "/Craiova", False),
    ("/Craiova/+", "/Craiova/Centru/Unirii", False),
    ("/Craiova/#", "/Craiova", True),
    ("/Craiova/#", "/Craiova/Centru/Unirii", True),
    ("/Craiova/#", "/CraiovaNord", False),
    ("/Craiova/#", "/Craiova0", False),
    ("/#", "/anything/at/all", True),
    ("/+/Centru", "/Timisoara/Centru", True),
    ("/+/Centru", "/Timisoara/Cetate", False),
    ("/+/Centru/#", "/Craiova/Centru/Unirii", True),
]


@pytest.mark.parametrize(("pattern", "scope", "expected"), MATCHING)
def test_pattern_matches(pattern: str, scope: str, expected: bool) -> None:
    node = parse_scopeq(pattern)
    assert isinstance(node, Pattern)
    assert pattern_matches(node, scope) is expected
    assert (re.search(regex(node), scope) is not None) is expected


def test_and_may_be_matched_by_different_scopes() -> None:
    assert matches(parse_scopeq("/Craiova/#;/Lighting"), ["/Craiova/Centru", "/Lighting"])
    assert not matches(parse_scopeq("/Craiova/#;/Lighting"), ["/Craiova/Centru"])
    assert not matches(parse_scopeq("/#"), [])


# -- SQL agrees with the evaluator -----------------------------------------------------------

LEVELS = ["a", "b", "c", "ab", "a0", "Ș"]
SCOPES = sorted({"/" + "/".join(p) for n in (1, 2, 3) for p in
                 itertools.product(LEVELS[:4], repeat=n)} | {"/a0", "/Ș/a"})


@pytest.fixture(scope="module")
def scoped_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteStore]:
    # Module-scoped: one store with one entity per scope, and a few with two scopes or none.
    path: Path = tmp_path_factory.mktemp("scopes") / "s.db"
    store = SQLiteStore(str(path), synchronous="OFF", readers=1)
    loop = asyncio.new_event_loop()
    entities = [([s], f"urn:x:{i}") for i, s in enumerate(SCOPES)]
    entities += [(["/a/b", "/c"], "urn:x:two"), ([], "urn:x:none"), (["/b/a/c", "/a"], "urn:x:3")]

    def put(scopes: list[str], entity_id: str) -> Any:
        entity = {"id": entity_id, "type": ["urn:T"], "createdAt": "t", "modifiedAt": "t",
                  "attrs": {}, **({"scope": scopes} if scopes else {})}
        return lambda _: (entity, None)

    loop.run_until_complete(store.open())
    loop.run_until_complete(store.apply_many("", [(i, put(s, i)) for s, i in entities]))
    store.test_loop = loop  # type: ignore[attr-defined]
    store.test_entities = {i: s for s, i in entities}  # type: ignore[attr-defined]
    yield store
    loop.run_until_complete(store.close())
    loop.close()


def _level() -> st.SearchStrategy[str]:
    return st.sampled_from([*LEVELS, "+"])


PATTERNS = st.builds(lambda levels, sub: Pattern(tuple(levels), sub),
                     st.lists(_level(), min_size=0, max_size=3), st.booleans()
                     ).filter(lambda p: p.levels or p.subtree)
TREES = st.recursive(PATTERNS, lambda kids: st.one_of(
    st.builds(lambda xs: ScopeAnd(tuple(xs)), st.lists(kids, min_size=2, max_size=3)),
    st.builds(lambda xs: ScopeOr(tuple(xs)), st.lists(kids, min_size=2, max_size=3))),
    max_leaves=5)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=TREES)
def test_sql_agrees_with_the_evaluator(scoped_store: SQLiteStore, tree: object) -> None:
    loop = scoped_store.test_loop  # type: ignore[attr-defined]
    entities = scoped_store.test_entities  # type: ignore[attr-defined]
    tree = parse_scopeq(unparse(tree))  # type: ignore[arg-type]
    result = loop.run_until_complete(scoped_store.query_entities(
        "", EntityQuery(scope_q=tree, limit=10_000)))
    got = {e["id"] for e in result.entities}
    assert got == {i for i, scopes in entities.items() if matches(tree, scopes)}


def test_sql_uses_the_scope_index(scoped_store: SQLiteStore) -> None:
    loop = scoped_store.test_loop  # type: ignore[attr-defined]
    for text in ("/a/b", "/a/#", "/a/+/c"):
        sql, params = compile_scopeq(parse_scopeq(text), "")
        plan = loop.run_until_complete(scoped_store.read_sql(
            f"EXPLAIN QUERY PLAN SELECT rid FROM entities e WHERE {sql}", params))
        assert any("entity_scopes_by_scope" in str(row) for row in plan), plan
