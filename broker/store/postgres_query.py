"""EntityQuery -> PostgreSQL SQL over the derived tables of migrations/postgresql: the
PostgreSQL Dialect of sql_compile. Pure.

The same plan as on SQLite (one indexed subquery on the derived rows per condition; PostgreSQL's
planner picks the driver), in PostgreSQL's dialect: `$n` parameters, `~` for regular
expressions, jsonb operators for values kept as JSON, and the GiST index of bounding boxes
(`&&`) for geo-queries, whose exact check (geo_eval) runs on the candidates as on SQLite, so
both engines answer alike. Date-time literals compare through the SQL functions of
migrations/postgresql (q_temporal, q_seconds), which give qlang.temporal_key's keys.

Known differences from SQLite, at the edges only: a regular expression is PostgreSQL's
(ARE: POSIX plus Perl-style escapes and lookarounds; a pattern only Python accepts is a 400),
and comparing a JSON member with a literal of another JSON type never matches (SQLite orders
numbers before strings).
"""

from __future__ import annotations

from broker.query.qlang import DateTime, temporal_key
from broker.store import sql_compile
from broker.store.protocol import EntityQuery
from broker.store.sql_compile import CompiledQuery, Dialect, Elements, Params

_ELEMENT_TEXT = "(v #>> '{}') COLLATE \"C\""  # v: a jsonb element


def _temporal(literal: DateTime, sql_op: str, columns: list[str], p: Params) -> str:
    key = temporal_key(literal.kind, literal.text)
    if key is None:
        return "false"
    if literal.kind == "time":
        return " OR ".join(f"q_seconds({c}) {sql_op} {p(float(key), '::float8')}"
                           for c in columns)
    return " OR ".join(f"q_temporal({p(literal.kind, '::text')}, {c}) COLLATE \"C\" {sql_op} "
                       f"{p(key, '::text')}" for c in columns)


def _list_match(elements: Elements) -> str:
    return (f"(jsonb_typeof(value_json) = 'array' AND EXISTS (SELECT 1 FROM "
            f"q_elements(value_json) v WHERE {elements()})) OR (kind = 'LanguageProperty' AND "
            f"EXISTS (SELECT 1 FROM jsonb_path_query(value_json, 'strict $.**') v "
            f"WHERE {elements()}))")


def _json_at(keys: tuple[str, ...]) -> str:
    """value_json #> '{k1,k2}': what a key path reaches (a literal, so that every use of it
    is the same expression)."""
    array = "{" + ",".join('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"'
                           for k in keys) + "}"
    return "(value_json #> '" + array.replace("'", "''") + "'::text[])"


def _geo_box(geoproperty: str, tenant: str, box: tuple[float, float, float, float],
             probe: bool, p: Params) -> str:
    owner = ("gi.rid = e.rid" if probe else f"gi.tenant = {p(tenant)}")
    min_lon, min_lat, max_lon, max_lat = box
    sql = (f"SELECT {'1' if probe else 'gi.rid'} FROM geo_index gi WHERE {owner} "
           f"AND gi.name = {p(geoproperty)} AND gi.bbox && ST_MakeEnvelope("
           f"{p(min_lon, '::float8')}, {p(min_lat, '::float8')}, {p(max_lon, '::float8')}, "
           f"{p(max_lat, '::float8')}, 4326)")
    return f"EXISTS ({sql})" if probe else f"e.rid IN ({sql})"


POSTGRESQL = Dialect(
    placeholder=lambda n, cast: f"${n}{cast}",
    regex="~",
    true="true",
    false="false",
    plan_driver=False,
    union_branches=False,
    in_list=lambda values, p: f"= ANY({p(values, '::text[]')})",
    temporal=_temporal,
    element_raw="(v #>> '{}')",
    element_text=_ELEMENT_TEXT,
    element_is_text="jsonb_typeof(v) = 'string'",
    # as SQLite's j.type = 'true' | 'false'
    element_bool=lambda literal, p: f"v = '{'true' if literal else 'false'}'::jsonb",
    # CASE, not AND: PostgreSQL may evaluate the cast before the type test.
    element_number=lambda sql_op, literal, p: (
        f"(CASE WHEN jsonb_typeof(v) = 'number' THEN (v)::float8 END) {sql_op} "
        f"{p(literal, '::float8')}"),
    list_match=_list_match,
    key_type=lambda keys: f"jsonb_typeof({_json_at(keys)})",
    key_elements=lambda keys: f"q_elements({_json_at(keys)}) v",
    key_present=lambda keys: f"{_json_at(keys)} IS NOT NULL",
    geo_box=_geo_box,
)


def compile_where(tenant: str, query: EntityQuery) -> CompiledQuery:
    return sql_compile.compile_where(tenant, query, POSTGRESQL)


__all__ = ["POSTGRESQL", "CompiledQuery", "compile_where"]
