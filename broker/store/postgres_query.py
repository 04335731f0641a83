"""EntityQuery -> PostgreSQL SQL over the derived tables of migrations/postgresql. Pure.

The same plan as sqlite_query (one indexed subquery on the derived rows per condition), in
PostgreSQL's dialect: `$n` parameters, `~` for regular expressions, jsonb operators for values
kept as JSON, and the GiST index of bounding boxes (`&&`) for geo-queries, whose exact check
(geo_eval) runs on the candidates as on SQLite, so both engines answer alike.

Known differences from SQLite, at the edges only: a regular expression is PostgreSQL's
(ARE: POSIX plus Perl-style escapes and lookarounds; a pattern only Python accepts is a 400),
and comparing a JSON member with a literal of another JSON type never matches (SQLite orders
numbers before strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.errors import BadRequestData
from broker.query.geo import bbox_prefilter
from broker.query.qlang import (
    And,
    Compare,
    DateTime,
    Exists,
    Node,
    Or,
    Path,
    Range,
    Uri,
    ValueList,
    temporal_key,
)
from broker.query.scopeq import (
    ANY_LEVEL,
    Pattern,
    ScopeAnd,
    ScopeNode,
    is_exact,
    literal_prefix,
    regex,
)
from broker.query.typeexpr import AllOf, TypeExpr, TypeName
from broker.store.protocol import EntityQuery, EntitySelector
from broker.store.rows import attr_path


@dataclass(frozen=True)
class CompiledQuery:
    where: str
    params: tuple[Any, ...]
    exact_geo: bool  # candidates still need geo_matches; paginate after it


@dataclass
class Params:
    """Collects parameter values, handing out their `$n` placeholders in order."""

    values: list[Any] = field(default_factory=list)

    def __call__(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{cast}"


def _types(expr: TypeExpr, tenant: str, p: Params) -> str:
    if isinstance(expr, TypeName):
        return (f"e.rid IN (SELECT rid FROM entity_types WHERE tenant = {p(tenant)} "
                f"AND type = {p(expr.name)})")
    joiner = " AND " if isinstance(expr, AllOf) else " OR "
    return "(" + joiner.join(_types(item, tenant, p) for item in expr.items) + ")"


def _selector(selector: EntitySelector, tenant: str, p: Params) -> str:
    clauses: list[str] = []
    if selector.id is not None:
        clauses.append(f"e.id = {p(selector.id)}")
    if selector.id_pattern is not None:
        clauses.append(f"e.id ~ {p(selector.id_pattern)}")
    if selector.types is not None:
        clauses.append(_types(selector.types, tenant, p))
    return "(" + (" AND ".join(clauses) or "true") + ")"


def compile_where(tenant: str, query: EntityQuery) -> CompiledQuery:
    p = Params()
    clauses: list[str] = [f"e.tenant = {p(tenant)}"]
    if query.ids:
        clauses.append(f"e.id = ANY({p(list(query.ids), '::text[]')})")
    if query.id_pattern is not None:
        clauses.append(f"e.id ~ {p(query.id_pattern)}")
    if query.types is not None:
        clauses.append(_types(query.types, tenant, p))
    if query.selectors:
        clauses.append("(" + " OR ".join(_selector(sel, tenant, p)
                                          for sel in query.selectors) + ")")
    if query.attrs:
        clauses.append(f"e.rid IN (SELECT rid FROM attrs WHERE tenant = {p(tenant)} "
                       f"AND name = ANY({p(sorted(query.attrs), '::text[]')}))")
    if query.q is not None:
        clauses.append(compile_q(query.q, tenant, p))
    if query.scope_q is not None:
        clauses.append(compile_scopeq(query.scope_q, tenant, p))
    if query.geo is not None:
        box = bbox_prefilter(query.geo)
        sql = (f"e.rid IN (SELECT gi.rid FROM geo_index gi WHERE gi.tenant = {p(tenant)} "
               f"AND gi.name = {p(query.geo.geoproperty)}")
        if box is not None:
            min_lon, min_lat, max_lon, max_lat = box
            sql += (f" AND gi.bbox && ST_MakeEnvelope({p(min_lon, '::float8')}, "
                    f"{p(min_lat, '::float8')}, {p(max_lon, '::float8')}, "
                    f"{p(max_lat, '::float8')}, 4326)")
        clauses.append(sql + ")")
    return CompiledQuery(" AND ".join(clauses), tuple(p.values), query.geo is not None)


# -- the q language -----------------------------------------------------------------------------
#
# As in sqlite_query (read its comment first): each comparison is "an attribute row with this
# name where the target matches"; the target is the instance's value columns ("row"), one member
# column ("member"), or elements `v` of a JSON value ("element": an array's elements, the
# strings of a languageMap, what a key path reaches); literals compare only with values of
# their own JSON type; date-time literals compare as instants through the SQL functions of
# migrations/postgresql (q_temporal, q_seconds), which give qlang.temporal_key's keys.

_SQL_OPS = {"==": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "~=": "~"}
_NEGATED = {"!=": "==", "!~=": "~="}

_MEMBER_COLUMNS = {"observedAt": "observed_at", "createdAt": "created_at",
                   "modifiedAt": "modified_at", "unitCode": "unit_code",
                   "datasetId": "(CASE WHEN depth = 0 THEN nullif(dataset_id, '') END)"}
_ELEMENT_TEXT = "(v #>> '{}') COLLATE \"C\""


@dataclass(frozen=True)
class _Target:
    source: str  # "row" | "member" | "element"
    column: str = ""


_ROW = _Target("row")
_ELEMENT = _Target("element")


def _temporal(literal: DateTime, sql_op: str, columns: list[str], p: Params) -> str:
    key = temporal_key(literal.kind, literal.text)
    if key is None:
        return "false"
    if literal.kind == "time":
        bound = p(float(key), "::float8")
        return " OR ".join(f"q_seconds({c}) {sql_op} {bound}" for c in columns)
    kind, bound = p(literal.kind, "::text"), p(key, "::text")
    return " OR ".join(f"q_temporal({kind}, {c}) COLLATE \"C\" {sql_op} {bound}"
                       for c in columns)


def _literal(target: _Target, literal: Any, op: str, p: Params) -> str:
    """A condition comparing one target with one scalar literal."""
    sql_op = _SQL_OPS[op]
    if isinstance(literal, DateTime):
        columns = {"row": ["value_text", "object"], "member": [target.column],
                   "element": ["(v #>> '{}')"]}[target.source]
        guard = "jsonb_typeof(v) = 'string' AND " if target.source == "element" else ""
        return f"({guard}({_temporal(literal, sql_op, columns, p)}))"
    if isinstance(literal, bool):  # before int: a bool is an int in Python
        if target.source == "member":
            return "false"
        if target.source == "element":  # as SQLite's j.type = 'true' | 'false'
            return f"v = '{'true' if literal else 'false'}'::jsonb"
        return f"value_bool {sql_op} {p(int(literal), '::int')}"
    if isinstance(literal, (int, float)):
        if target.source == "member":
            return "false"
        if target.source == "element":
            # CASE, not AND: PostgreSQL may evaluate the cast before the type test.
            return (f"(CASE WHEN jsonb_typeof(v) = 'number' THEN (v)::float8 END) {sql_op} "
                    f"{p(literal, '::float8')}")
        return f"value_num {sql_op} {p(literal, '::float8')}"
    text = literal.text if isinstance(literal, Uri) else literal
    if target.source == "member":
        return f"{target.column} {sql_op} {p(text, '::text')}"
    if target.source == "element":
        return f"(jsonb_typeof(v) = 'string' AND {_ELEMENT_TEXT} {sql_op} {p(text, '::text')})"
    bound = p(text, "::text")
    return f"(value_text {sql_op} {bound} OR object {sql_op} {bound})"


def _value(target: _Target, value: Any, op: str, p: Params) -> str:
    """A condition on one target for a whole q value: a literal, a range or a value list."""
    if isinstance(value, ValueList):
        return "(" + " OR ".join(_literal(target, v, op, p) for v in value.values) + ")"
    if isinstance(value, Range):  # both ends on the same element
        if op != "==":
            raise BadRequestData(f"q: {op} takes a single value")
        return (f"({_literal(target, value.low, '>=', p)} AND "
                f"{_literal(target, value.high, '<=', p)})")
    if isinstance(value, ValueList | And | Or | Compare | Exists):
        raise BadRequestData("q: a value cannot be a query")
    return _literal(target, value, op, p)


def _json_at(keys: tuple[str, ...]) -> str:
    """value_json #> '{k1,k2}': what a key path reaches (a literal, so that every use of it
    is the same expression)."""
    array = "{" + ",".join('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"'
                           for k in keys) + "}"
    return "(value_json #> '" + array.replace("'", "''") + "'::text[])"


def _matches(path: Path, op: str, value: Any, p: Params) -> str:
    """The positive test (==, ~=, >...) on one attribute row."""
    if path.member is not None:
        return _value(_Target("member", _MEMBER_COLUMNS[path.member]), value, op, p)
    elements = _value(_ELEMENT, value, op, p)  # placeholders may repeat: built once
    if path.keys:
        at = _json_at(path.keys)
        return (f"(jsonb_typeof({at}) <> 'object' AND EXISTS (SELECT 1 FROM q_elements({at}) v "
                f"WHERE {elements}))")
    scalar = _value(_ROW, value, op, p)
    return (f"({scalar} OR (jsonb_typeof(value_json) = 'array' AND EXISTS (SELECT 1 FROM "
            f"q_elements(value_json) v WHERE {elements})) OR (kind = 'LanguageProperty' AND "
            f"EXISTS (SELECT 1 FROM jsonb_path_query(value_json, 'strict $.**') v "
            f"WHERE {elements})))")


def _present(path: Path) -> str:
    """Whether the path reaches something in the row (for !=, !~= and existence)."""
    if path.member is not None:
        return f"{_MEMBER_COLUMNS[path.member]} IS NOT NULL"
    if path.keys:
        return f"{_json_at(path.keys)} IS NOT NULL"
    return "true"


def _row_condition(node: Compare, p: Params) -> str:
    if node.op in (">", ">=", "<", "<=") and isinstance(node.value, (Range, ValueList)):
        raise BadRequestData(f"q: {node.op} takes a single value")
    positive = _NEGATED.get(node.op)
    if positive is None:
        return _matches(node.path, node.op, node.value, p)
    # Clause 4.9: != (and !~=) holds on an instance whose target exists and does not match.
    cond = _matches(node.path, positive, node.value, p)
    return f"{_present(node.path)} AND NOT coalesce({cond}, false)"


def _row_name(path: Path) -> str:
    return attr_path(path.attr, path.sub) if path.sub else path.attr


def compile_q(node: Node, tenant: str, p: Params) -> str:
    """A q AST (names expanded) as a condition on `e`, the entities table."""
    if isinstance(node, (And, Or)):
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(compile_q(i, tenant, p) for i in node.items) + ")"
    rows = f"SELECT rid FROM attrs WHERE tenant = {p(tenant)} AND name = {p(_row_name(node.path))}"
    if isinstance(node, Exists):
        present = _present(node.path)
        if present != "true":
            rows += f" AND {present}"
        return f"e.rid {'NOT IN' if node.negated else 'IN'} ({rows})"
    return f"e.rid IN ({rows} AND {_row_condition(node, p)})"


# -- scopeQ (clause 4.19) -------------------------------------------------------------------


def _scope_condition(pattern: Pattern, p: Params) -> str:
    """A condition on entity_scopes.scope; every branch ranges over the (tenant, scope) index."""
    prefix = literal_prefix(pattern)
    if is_exact(pattern):
        return f"scope = {p(prefix)}"
    if not prefix and ANY_LEVEL not in pattern.levels:  # "/#": any scope at all
        return "true"
    # Every scope below `prefix` sorts between prefix + "/" and prefix + "0" ("0" follows "/").
    # (Placeholders are numbered as they are handed out, so build only what is used.)
    if ANY_LEVEL in pattern.levels:
        below = f"(scope > {p(prefix + '/')} AND scope < {p(prefix + '0')})"
        return f"{below} AND scope ~ {p(regex(pattern))}"
    exact = f"scope = {p(prefix)}"
    return f"({exact} OR (scope > {p(prefix + '/')} AND scope < {p(prefix + '0')}))"


def compile_scopeq(node: ScopeNode, tenant: str, p: Params) -> str:
    """A scopeQ AST as a condition on `e`: each pattern is one indexed subquery."""
    if isinstance(node, Pattern):
        return (f"e.rid IN (SELECT rid FROM entity_scopes WHERE tenant = {p(tenant)} "
                f"AND {_scope_condition(node, p)})")
    joiner = " AND " if isinstance(node, ScopeAnd) else " OR "
    return "(" + joiner.join(compile_scopeq(item, tenant, p) for item in node.items) + ")"
