"""The SQL the query compiler emits is served by indexes (EXPLAIN QUERY PLAN on a real store):
no workload walks every entity or every attribute row of a tenant."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from broker.query.geo import parse_geo_query
from broker.query.qlang import expand_names, parse_q
from broker.query.scopeq import parse_scopeq
from broker.query.typeexpr import TypeName
from broker.store.migrate import migrate_sqlite
from broker.store.protocol import EntityQuery
from broker.store.sqlite_query import compile_where

D = "https://uri.etsi.org/ngsi-ld/default-context/"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"


def q(text: str) -> object:
    return expand_names(parse_q(text), lambda n: n if ":" in n else D + n)


def near() -> object:
    geo = parse_geo_query("near;maxDistance==300", "Point", "[23.8,44.31]", None)
    return replace(geo, geoproperty=LOCATION)


CASES = {
    # The type drives (its rids in order); each q condition is a probe of one candidate.
    "type + two q": (EntityQuery(types=TypeName(D + "T"), q=q('level>5;status=="free"')),
                     ["entity_types_by_type (tenant=? AND type=?)",
                      "SEARCH a USING INDEX attrs_by_entity (rid=?)"]),
    # A relationship's object drives; the type is a probe.
    "relationship": (EntityQuery(types=TypeName(D + "T"), q=q("refGroup==urn:ngsi-ld:G:1")),
                     ["attrs_by_object (tenant=? AND name=? AND object=?)",
                      "SEARCH t USING PRIMARY KEY (rid=? AND type=?)"]),
    "q alone": (EntityQuery(q=q("level>5")),
                ["attrs_by_num (tenant=? AND name=? AND value_num>?)", "attrs_by_json"]),
    "range": (EntityQuery(q=q("level==1..5")),
              ["attrs_by_num (tenant=? AND name=? AND value_num>? AND value_num<?)"]),
    "or": (EntityQuery(q=q('status=="a"|level==3')),
           ["attrs_by_text (tenant=? AND name=? AND value_text=?)",
            "attrs_by_num (tenant=? AND name=? AND value_num=?)"]),
    # The R*Tree drives, then each box's owner; the type is a probe.
    "geo near": (EntityQuery(types=TypeName(D + "T"), geo=near()),
                 ["VIRTUAL TABLE INDEX 2:", "gi USING INTEGER PRIMARY KEY",
                  "SEARCH t USING PRIMARY KEY (rid=? AND type=?)"]),
    "scopeQ": (EntityQuery(types=TypeName(D + "T"), scope_q=parse_scopeq("/Craiova/#")),
               ["entity_scopes_by_scope", "SEARCH t USING PRIMARY KEY (rid=? AND type=?)"]),
    "ids": (EntityQuery(ids=("urn:a", "urn:b"), q=q("level>5")),
            ["sqlite_autoindex_entities_1 (tenant=? AND id=?)",
             "SEARCH a USING INDEX attrs_by_entity (rid=?)"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_plans_use_indexes(tmp_path: Path, name: str) -> None:
    conn = sqlite3.connect(str(tmp_path / "plan.db"), isolation_level=None)
    migrate_sqlite(conn)
    query, expected = CASES[name]
    compiled = compile_where("", query)
    sql = f"SELECT e.doc FROM entities e WHERE {compiled.where} ORDER BY e.rid LIMIT 20"
    plan = "\n".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql,
                                                       compiled.params))
    conn.close()
    for fragment in expected:
        assert fragment in plan, plan
    # The entities table is reached by rowid (or the id index), never scanned.
    assert "SCAN e" not in plan, plan
    if not query.ids:
        assert "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan
