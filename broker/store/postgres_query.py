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

from broker.entities.clock import normalize_datetime
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
from broker.store.protocol import EntityQuery
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


def compile_where(tenant: str, query: EntityQuery) -> CompiledQuery:
    p = Params()
    clauses: list[str] = [f"e.tenant = {p(tenant)}"]
    if query.ids:
        clauses.append(f"e.id = ANY({p(list(query.ids), '::text[]')})")
    if query.id_pattern is not None:
        clauses.append(f"e.id ~ {p(query.id_pattern)}")
    if query.types is not None:
        clauses.append(_types(query.types, tenant, p))
    if query.attrs:
        clauses.append(f"e.rid IN (SELECT rid FROM attrs WHERE tenant = {p(tenant)} "
                       f"AND name = ANY({p(sorted(query.attrs), '::text[]')}))")
    if query.q is not None:
        clauses.append(compile_q(query.q, tenant, p))
    if getattr(query, "scope_q", None) is not None:
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

# SQL comparison for each q operator; != is "exists and not ==" (clause 4.9), built separately.
_SQL_OPS = {"==": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
_MEMBER_COLUMNS = {"observedAt": "observed_at", "datasetId": "dataset_id"}


@dataclass(frozen=True)
class _Json:
    """A member inside a JSON value (`attr[key.key]`): a jsonb expression."""

    expr: str

    def as_text(self) -> str:
        return f"(CASE WHEN jsonb_typeof({self.expr}) = 'string' THEN {self.expr} #>> '{{}}' END)"

    def as_number(self) -> str:
        # SQLite's json_extract gives true/false as 1/0, which compare with numbers.
        return (f"(CASE jsonb_typeof({self.expr}) WHEN 'number' THEN ({self.expr})::float8 "
                f"WHEN 'boolean' THEN ({self.expr})::boolean::int END)")


Column = str | _Json | None  # None: the attribute's value itself


def _literal(value: Any) -> Any:
    return value.text if isinstance(value, (DateTime, Uri)) else value


def _typed(value: Any, op: str, column: Column, p: Params) -> str:
    """A condition on one attribute row comparing it with one scalar literal."""
    sql_op = _SQL_OPS[op]
    literal = _literal(value)
    if isinstance(column, _Json):
        if isinstance(literal, bool | int | float):
            return f"{column.as_number()} {sql_op} {p(float(literal), '::float8')}"
        return f"{column.as_text()} {sql_op} {p(literal, '::text')}"
    if column is not None:
        if isinstance(value, DateTime) and column == "observed_at":
            literal = normalize_datetime(value.text, "q")
        if isinstance(literal, bool):
            literal = int(literal)
        # SQLite gives a number compared with a TEXT column that column's affinity: as text.
        return f"{column} {sql_op} {p(str(literal), '::text')}"
    if isinstance(value, bool):
        return f"value_bool {sql_op} {p(int(value), '::int')}"
    if isinstance(value, (int, float)):
        return f"value_num {sql_op} {p(float(value), '::float8')}"
    text = p(literal, "::text")
    cond = f"value_text {sql_op} {text} OR object {sql_op} {text}"
    if op == "==":  # an element of a list value (valueList, objectList, JSON array) matches too
        cond += (f" OR value_json @> to_jsonb({text}) OR (jsonb_typeof(value_json) = 'object' "
                 f"AND jsonb_path_exists(value_json, 'strict $.* ? (@ == $v)', "
                 f"jsonb_build_object('v', {text})))")
    return f"({cond})"


def _equality(value: Any, column: Column, p: Params) -> str:
    if isinstance(value, ValueList):
        return "(" + " OR ".join(_typed(v, "==", column, p) for v in value.values) + ")"
    if isinstance(value, Range):
        return f"({_typed(value.low, '>=', column, p)} AND {_typed(value.high, '<=', column, p)})"
    if isinstance(value, (And, Or, Compare, Exists)):
        raise BadRequestData("q: a value cannot be a query")
    return _typed(value, "==", column, p)


def _column(path: Path) -> Column:
    if path.keys:
        keys = "{" + ",".join('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"'
                              for k in path.keys) + "}"
        # A literal, not a parameter, so that existence and comparison share the expression.
        return _Json(f"(value_json #> '{keys.replace(chr(39), chr(39) * 2)}'::text[])")
    if path.member is None:
        return None
    column = _MEMBER_COLUMNS.get(path.member)
    if column is None:
        raise BadRequestData(f"q on the {path.member} of an attribute is not supported yet")
    return column


def _text_of(column: Column) -> str:
    if isinstance(column, _Json):
        return column.as_text()
    return column or "value_text"


def _row_condition(node: Compare, p: Params) -> str:
    col = _column(node.path)
    if node.op in ("~=", "!~="):
        target = _text_of(col)
        if node.op == "~=":
            return f"{target} ~ {p(node.value, '::text')}"
        return f"{target} IS NOT NULL AND NOT ({target} ~ {p(node.value, '::text')})"
    if node.op == "!=":
        return f"NOT coalesce(({_equality(node.value, col, p)}), false)"
    if node.op == "==":
        return _equality(node.value, col, p)
    if isinstance(node.value, (Range, ValueList)):
        raise BadRequestData(f"q: {node.op} takes a single value")
    return _typed(node.value, node.op, col, p)


def _row_name(path: Path) -> str:
    return attr_path(path.attr, path.sub) if path.sub else path.attr


def compile_q(node: Node, tenant: str, p: Params) -> str:
    """A q AST (names expanded) as a condition on `e`, the entities table."""
    if isinstance(node, (And, Or)):
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(compile_q(i, tenant, p) for i in node.items) + ")"
    rows = f"SELECT rid FROM attrs WHERE tenant = {p(tenant)} AND name = {p(_row_name(node.path))}"
    if isinstance(node, Exists):
        column = _column(node.path)
        if isinstance(column, _Json):
            rows += f" AND jsonb_typeof({column.expr}) <> 'null'"
        elif column is not None:
            rows += f" AND {column} IS NOT NULL"
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
