"""EntityQuery -> SQLite SQL over the derived tables of migrations/sqlite. Pure.

Types use the (tenant, type) index, attribute presence the (tenant, name, ...) indexes, and
geo-queries the R*Tree of bounding boxes; the exact geometry check happens on the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from broker.store.protocol import EntityQuery, EntitySelector
from broker.store.rows import attr_path


@dataclass(frozen=True)
class CompiledQuery:
    where: str
    params: tuple[Any, ...]
    exact_geo: bool  # candidates still need geo_matches; paginate after it


def _types(expr: TypeExpr, tenant: str) -> tuple[str, list[Any]]:
    if isinstance(expr, TypeName):
        return ("e.rid IN (SELECT rid FROM entity_types WHERE tenant = ? AND type = ?)",
                [tenant, expr.name])
    parts = [_types(item, tenant) for item in expr.items]
    joiner = " AND " if isinstance(expr, AllOf) else " OR "
    return ("(" + joiner.join(p[0] for p in parts) + ")",
            [param for p in parts for param in p[1]])


def _selector(selector: EntitySelector, tenant: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if selector.id is not None:
        clauses.append("e.id = ?")
        params.append(selector.id)
    if selector.id_pattern is not None:
        clauses.append("e.id REGEXP ?")
        params.append(selector.id_pattern)
    if selector.types is not None:
        sql, more = _types(selector.types, tenant)
        clauses.append(sql)
        params.extend(more)
    return "(" + (" AND ".join(clauses) or "1") + ")", params


def compile_where(tenant: str, query: EntityQuery) -> CompiledQuery:
    clauses: list[str] = ["e.tenant = ?"]
    params: list[Any] = [tenant]
    if query.ids:
        clauses.append(f"e.id IN ({','.join('?' * len(query.ids))})")
        params.extend(query.ids)
    if query.id_pattern is not None:
        clauses.append("e.id REGEXP ?")
        params.append(query.id_pattern)
    if query.types is not None:
        sql, more = _types(query.types, tenant)
        clauses.append(sql)
        params.extend(more)
    if query.selectors:
        parts = [_selector(s, tenant) for s in query.selectors]
        clauses.append("(" + " OR ".join(p[0] for p in parts) + ")")
        params.extend(x for p in parts for x in p[1])
    if query.attrs:
        marks = ",".join("?" * len(query.attrs))
        clauses.append(f"e.rid IN (SELECT rid FROM attrs WHERE tenant = ? AND name IN ({marks}))")
        params.extend([tenant, *sorted(query.attrs)])
    if query.q is not None:
        sql, more = compile_q(query.q, tenant)
        clauses.append(sql)
        params.extend(more)
    if query.scope_q is not None:
        sql, more = compile_scopeq(query.scope_q, tenant)
        clauses.append(sql)
        params.extend(more)
    if query.geo is not None:
        box = bbox_prefilter(query.geo)
        sql = ("e.rid IN (SELECT gi.rid FROM geo_index gi JOIN geo_boxes gb ON gb.gid = gi.gid "
               "WHERE gi.tenant = ? AND gi.name = ?")
        params.extend([tenant, query.geo.geoproperty])
        if box is not None:
            sql += " AND gb.max_x >= ? AND gb.min_x <= ? AND gb.max_y >= ? AND gb.min_y <= ?"
            min_lon, min_lat, max_lon, max_lat = box
            params.extend([min_lon, max_lon, min_lat, max_lat])
        clauses.append(sql + ")")
    return CompiledQuery(" AND ".join(clauses), tuple(params), query.geo is not None)


# -- the q language -----------------------------------------------------------------------------

# SQL comparison for each q operator; != is "exists and not ==" (clause 4.9), built separately.
_SQL_OPS = {"==": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def _json_path(keys: tuple[str, ...]) -> str:
    return "$" + "".join('."' + k.replace('"', '\\"') + '"' for k in keys)


def _typed(value: Any, op: str, column: str | None) -> tuple[str, list[Any]]:
    """A condition on one attribute row comparing it with one scalar literal."""
    sql_op = _SQL_OPS[op]
    if column is not None:
        if column.startswith("json_extract"):  # a compound value's member: any JSON scalar
            literal = value.text if isinstance(value, (DateTime, Uri)) else value
            return f"{column} {sql_op} ?", [int(literal) if isinstance(literal, bool)
                                            else literal]
        # A member holds a string: other literals never match it (as in qlang.matches).
        if not isinstance(value, (str, DateTime, Uri)):
            return "0", []
        literal = value.text if isinstance(value, (DateTime, Uri)) else value
        if isinstance(value, DateTime) and column in _DATETIME_COLUMNS:
            if value.kind == "date":  # the UTC date of the stored instant
                return f"substr({column}, 1, 10) {sql_op} ?", [value.text]
            if value.kind == "time":
                raise BadRequestData(f"q: a time of day cannot be compared with {column}")
            literal = normalize_datetime(value.text, "q")
        return f"{column} {sql_op} ?", [literal]
    if isinstance(value, bool):
        return f"value_bool {sql_op} ?", [int(value)]
    if isinstance(value, (int, float)):
        return f"value_num {sql_op} ?", [value]
    text = value.text if isinstance(value, (DateTime, Uri)) else value
    cond = f"(value_text {sql_op} ? OR object {sql_op} ?)"
    params: list[Any] = [text, text]
    if op == "==":  # an element of a list value (valueList, objectList, JSON array) matches too
        cond = (f"({cond[1:-1]} OR EXISTS (SELECT 1 FROM json_each(value_json) j "
                "WHERE j.value = ?))")
        params.append(text)
    return cond, params


def _equality(value: Any, column: str | None) -> tuple[str, list[Any]]:
    if isinstance(value, ValueList):
        parts = [_typed(v, "==", column) for v in value.values]
        return "(" + " OR ".join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]
    if isinstance(value, Range):
        low, high = _typed(value.low, ">=", column), _typed(value.high, "<=", column)
        return f"({low[0]} AND {high[0]})", low[1] + high[1]
    if isinstance(value, (And, Or, Compare, Exists)):
        raise BadRequestData("q: a value cannot be a query")
    return _typed(value, "==", column)


def _column(path: Path) -> str | None:
    """The SQL expression a path compares, or None for the attribute's value itself."""
    if path.keys:
        # The JSON path is a string literal (quotes doubled), not a parameter, so the same
        # expression can serve both the existence test and the comparison.
        literal = "'" + _json_path(path.keys).replace("'", "''") + "'"
        return f"json_extract(value_json, {literal})"
    if path.member is None:
        return None
    return _MEMBER_COLUMNS[path.member]


# Member -> column. The default instance's datasetId is stored as '' but has none in q terms.
_MEMBER_COLUMNS = {"observedAt": "observed_at", "createdAt": "created_at",
                   "modifiedAt": "modified_at", "unitCode": "unit_code",
                   "datasetId": "nullif(dataset_id, '')"}
# Members holding date-times, which the store keeps in the broker's normalised form.
_DATETIME_COLUMNS = frozenset({"observed_at", "created_at", "modified_at"})


def _row_condition(node: Compare) -> tuple[str, list[Any]]:
    col = _column(node.path)
    if node.op in ("~=", "!~="):
        target = col or "value_text"
        if node.op == "~=":
            return f"{target} REGEXP ?", [node.value]
        return f"{target} IS NOT NULL AND NOT ({target} REGEXP ?)", [node.value]
    if node.op == "!=":
        cond, params = _equality(node.value, col)
        return f"NOT coalesce(({cond}), 0)", params
    if node.op == "==":
        return _equality(node.value, col)
    if isinstance(node.value, (Range, ValueList)):
        raise BadRequestData(f"q: {node.op} takes a single value")
    return _typed(node.value, node.op, col)


def _row_name(path: Path) -> str:
    return attr_path(path.attr, path.sub) if path.sub else path.attr


def compile_q(node: Node, tenant: str) -> tuple[str, list[Any]]:
    """A q AST (names expanded) as a condition on `e`, the entities table."""
    if isinstance(node, (And, Or)):
        parts = [compile_q(i, tenant) for i in node.items]
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]
    rows = "SELECT rid FROM attrs WHERE tenant = ? AND name = ?"
    params: list[Any] = [tenant, _row_name(node.path)]
    if isinstance(node, Exists):
        column = _column(node.path)
        if column is not None:
            rows += f" AND {column} IS NOT NULL"
        return (f"e.rid {'NOT IN' if node.negated else 'IN'} ({rows})", params)
    cond, more = _row_condition(node)
    return f"e.rid IN ({rows} AND {cond})", params + more


# -- scopeQ (clause 4.19) -------------------------------------------------------------------


def _scope_condition(pattern: Pattern) -> tuple[str, list[Any]]:
    """A condition on entity_scopes.scope; every branch ranges over the (tenant, scope) index."""
    prefix = literal_prefix(pattern)
    if is_exact(pattern):
        return "scope = ?", [prefix]
    # Every scope below `prefix` sorts between prefix + "/" and prefix + "0" ("0" follows "/").
    below = "(scope > ? AND scope < ?)"
    params: list[Any] = [prefix + "/", prefix + "0"]
    if ANY_LEVEL in pattern.levels:
        return f"{below} AND scope REGEXP ?", [*params, regex(pattern)]
    if not prefix:  # "/#": any scope at all
        return "1", []
    return f"(scope = ? OR {below})", [prefix, *params]


def compile_scopeq(node: ScopeNode, tenant: str) -> tuple[str, list[Any]]:
    """A scopeQ AST as a condition on `e`: each pattern is one indexed subquery."""
    if isinstance(node, Pattern):
        cond, params = _scope_condition(node)
        return (f"e.rid IN (SELECT rid FROM entity_scopes WHERE tenant = ? AND {cond})",
                [tenant, *params])
    parts = [compile_scopeq(item, tenant) for item in node.items]
    joiner = " AND " if isinstance(node, ScopeAnd) else " OR "
    return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]
