"""EntityQuery -> SQLite SQL over the derived tables of migrations/sqlite: the SQLite Dialect of
sql_compile. Pure.

SQLite has no planner statistics here, so the compiler picks the driving index itself
(sql_compile._driver); geo-queries search the R*Tree of bounding boxes. Readers register two
functions: REGEXP (Python `re`) and q_temporal (qlang.temporal_key).
"""

from __future__ import annotations

from typing import Any

from broker.query.qlang import DateTime, temporal_key
from broker.query.scopeq import ScopeNode
from broker.store import sql_compile
from broker.store.protocol import EntityQuery
from broker.store.sql_compile import CompiledQuery, Dialect, Elements, Params, sql_string

_NUMBER_TYPES = "('integer', 'real')"


def _in_list(values: list[Any], p: Params) -> str:
    return "IN (" + ",".join(p(v) for v in values) + ")"


def _temporal(literal: DateTime, sql_op: str, columns: list[str], p: Params) -> str:
    key = temporal_key(literal.kind, literal.text)
    return " OR ".join(f"q_temporal({p(literal.kind)}, {c}) {sql_op} {p(key)}" for c in columns)


def _list_match(elements: Elements) -> str:
    return (f"value_json IS NOT NULL AND ((json_type(value_json) = 'array' AND EXISTS (SELECT 1 "
            f"FROM json_each(value_json) j WHERE {elements()})) OR (kind = 'LanguageProperty' AND "
            f"EXISTS (SELECT 1 FROM json_tree(value_json) j WHERE {elements()})))")


def _json_path(keys: tuple[str, ...]) -> str:
    return sql_string("$" + "".join('."' + k.replace('"', '\\"') + '"' for k in keys))


def _geo_box(geoproperty: str, tenant: str, box: tuple[float, float, float, float],
             probe: bool, p: Params) -> str:
    min_lon, min_lat, max_lon, max_lat = box

    def overlaps() -> str:
        return (f"gb.max_x >= {p(min_lon)} AND gb.min_x <= {p(max_lon)} AND "
                f"gb.max_y >= {p(min_lat)} AND gb.min_y <= {p(max_lat)}")

    if probe:
        return (f"EXISTS (SELECT 1 FROM geo_index gi CROSS JOIN geo_boxes gb WHERE gi.rid = e.rid "
                f"AND gi.name = {p(geoproperty)} AND gb.gid = gi.gid AND {overlaps()})")
    # CROSS JOIN keeps this order: the R*Tree finds the boxes, then each box's owner; the
    # other way round probes the R*Tree once per GeoProperty of the tenant.
    return (f"e.rid IN (SELECT gi.rid FROM geo_boxes gb CROSS JOIN geo_index gi WHERE {overlaps()} "
            f"AND gi.gid = gb.gid AND gi.tenant = {p(tenant)} AND gi.name = {p(geoproperty)})")


SQLITE = Dialect(
    placeholder=lambda n, cast: "?",
    regex="REGEXP",
    true="1",
    false="0",
    plan_driver=True,
    union_branches=True,
    in_list=_in_list,
    temporal=_temporal,
    element_raw="j.value",  # j: a row of json_each / json_tree
    element_text="j.value",
    element_is_text="j.type = 'text'",
    element_bool=lambda literal, p: f"j.type = {p('true' if literal else 'false')}",
    element_number=lambda sql_op, literal, p: (
        f"(j.type IN {_NUMBER_TYPES} AND j.value {sql_op} {p(literal)})"),
    list_match=_list_match,
    # json_each of a scalar is that scalar, of an array its elements.
    key_type=lambda keys: f"json_type(value_json, {_json_path(keys)})",
    key_elements=lambda keys: f"json_each(value_json, {_json_path(keys)}) j",
    key_present=lambda keys: f"json_type(value_json, {_json_path(keys)}) IS NOT NULL",
    geo_box=_geo_box,
)


def compile_where(tenant: str, query: EntityQuery) -> CompiledQuery:
    return sql_compile.compile_where(tenant, query, SQLITE)


def compile_scopeq(node: ScopeNode, tenant: str, probe: bool = False) -> tuple[str, list[Any]]:
    """A scopeQ AST as a condition on `e` and its parameters."""
    p = SQLITE.params()
    return sql_compile.compile_scopeq(node, tenant, SQLITE, p, probe), p.values
