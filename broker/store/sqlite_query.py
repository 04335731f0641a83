"""EntityQuery -> SQLite SQL over the derived tables of migrations/sqlite. Pure.

One condition drives the query as an index range (types on (tenant, type), q on the
(tenant, name, value) indexes, scopeQ on (tenant, scope), geo-queries on the R*Tree of bounding
boxes, ids on (tenant, id)); the others are probes of each candidate by rid (see _driver). The
exact geometry check happens on the candidates, in Python. Readers register two functions:
REGEXP (Python `re`) and q_temporal (qlang.temporal_key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.errors import BadRequestData
from broker.query.geo import bbox_prefilter
from broker.query.qlang import (
    And,
    Compare,
    DateTime,
    Exists,
    Node,
    NotExists,
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


def _types(expr: TypeExpr, tenant: str, probe: bool = False) -> tuple[str, list[Any]]:
    if isinstance(expr, TypeName):
        if probe:
            return ("EXISTS (SELECT 1 FROM entity_types t WHERE t.rid = e.rid AND t.type = ?)",
                    [expr.name])
        return ("e.rid IN (SELECT rid FROM entity_types WHERE tenant = ? AND type = ?)",
                [tenant, expr.name])
    parts = [_types(item, tenant, probe) for item in expr.items]
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
        sql, more = _types(selector.types, tenant, probe=True)
        clauses.append(sql)
        params.extend(more)
    return "(" + (" AND ".join(clauses) or "1") + ")", params


# -- choosing the driver ----------------------------------------------------------------------
#
# SQLite has no statistics here, so the compiler picks which condition drives the query: that
# one becomes `e.rid IN (an index range)`, walked in rid order (so ORDER BY rid LIMIT n stops
# after n matches), and every other condition a probe, `EXISTS (... WHERE rid = e.rid ...)`,
# one index lookup per candidate. Materialising a broad condition (level>100: most rows of the
# attribute) as a second IN list cost seconds at 100,000 entities. The order of preference is
# a guess at selectivity: ids, a relationship's object, a geo box, scopes, types, another
# equality, then the rest.
_IDS, _GEO, _SCOPE, _TYPES, _ALL_Q, _ATTRS = "ids", "geo", "scope", "types", "q", "attrs"


def _top_leaves(node: Node | None) -> list[Node]:
    """The conditions every match must meet on its own (the items of a top-level AND)."""
    if node is None or isinstance(node, Or):
        return []
    items = node.items if isinstance(node, And) else (node,)
    return [i for i in items if isinstance(i, Compare | Exists) and not isinstance(i, NotExists)]


def _is_equality(node: Node, literal: type | tuple[type, ...] = object) -> bool:
    if not isinstance(node, Compare) or node.op != "==" or node.path.member is not None:
        return False
    values = node.value.values if isinstance(node.value, ValueList) else (node.value,)
    return not isinstance(node.value, Range) and all(isinstance(v, literal) for v in values)


def _driver(query: EntityQuery) -> Any:
    if query.ids:
        return _IDS
    leaves = _top_leaves(query.q)
    relationship = next((leaf for leaf in leaves if _is_equality(leaf, Uri)), None)
    if relationship is not None:
        return relationship
    if query.geo is not None and bbox_prefilter(query.geo) is not None:
        return _GEO
    if query.scope_q is not None:
        return _SCOPE
    if query.types is not None:
        return _TYPES
    equality = next((leaf for leaf in leaves if _is_equality(leaf)), None)
    if equality is not None or leaves:
        return equality or leaves[0]
    if isinstance(query.q, Or):
        return _ALL_Q
    if query.attrs:
        return _ATTRS
    return _GEO if query.geo is not None else None


def compile_where(tenant: str, query: EntityQuery) -> CompiledQuery:
    driver = _driver(query)
    # Every subquery and probe is confined to the tenant already (rids are per tenant). With a
    # driver, the tenant term on `e` is kept out of the planner's reach ("+"), or SQLite would
    # walk every entity of the tenant instead.
    scan = driver is None or driver == _IDS or bool(query.selectors)
    clauses: list[str] = ["e.tenant = ?" if scan else "+e.tenant = ?"]
    params: list[Any] = [tenant]

    def add(sql: str, more: list[Any]) -> None:
        clauses.append(sql)
        params.extend(more)

    if query.ids:
        add(f"e.id IN ({','.join('?' * len(query.ids))})", list(query.ids))
    if query.id_pattern is not None:
        add("e.id REGEXP ?", [query.id_pattern])
    if query.types is not None:
        add(*_types(query.types, tenant, probe=driver != _TYPES))
    if query.selectors:
        parts = [_selector(s, tenant) for s in query.selectors]
        add("(" + " OR ".join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]])
    if query.attrs:
        marks = ",".join("?" * len(query.attrs))
        if driver == _ATTRS:
            add(f"e.rid IN (SELECT rid FROM attrs WHERE tenant = ? AND name IN ({marks}))",
                [tenant, *sorted(query.attrs)])
        else:
            add(f"EXISTS (SELECT 1 FROM attrs a WHERE a.rid = e.rid AND a.name IN ({marks}))",
                sorted(query.attrs))
    if query.q is not None:
        add(*compile_q(query.q, tenant, _IN if driver == _ALL_Q else driver))
    if query.scope_q is not None:
        add(*compile_scopeq(query.scope_q, tenant, probe=driver != _SCOPE))
    if query.geo is not None:
        add(*_geo(query, tenant, probe=driver != _GEO))
    return CompiledQuery(" AND ".join(clauses), tuple(params), query.geo is not None)


def _geo(query: EntityQuery, tenant: str, probe: bool) -> tuple[str, list[Any]]:
    geo = query.geo
    box = bbox_prefilter(geo)
    if box is None:  # no box to search (e.g. disjoint): every box of the geoproperty
        if probe:
            return ("EXISTS (SELECT 1 FROM geo_index gi WHERE gi.rid = e.rid AND gi.name = ?)",
                    [geo.geoproperty])
        return ("e.rid IN (SELECT gi.rid FROM geo_index gi WHERE gi.tenant = ? AND "
                "gi.name = ?)", [tenant, geo.geoproperty])
    min_lon, min_lat, max_lon, max_lat = box
    overlaps = "gb.max_x >= ? AND gb.min_x <= ? AND gb.max_y >= ? AND gb.min_y <= ?"
    corners = [min_lon, max_lon, min_lat, max_lat]
    if probe:
        return (f"EXISTS (SELECT 1 FROM geo_index gi CROSS JOIN geo_boxes gb WHERE gi.rid = e.rid "
                f"AND gi.name = ? AND gb.gid = gi.gid AND {overlaps})",
                [geo.geoproperty, *corners])
    # CROSS JOIN keeps this order: the R*Tree finds the boxes, then each box's owner; the
    # other way round probes the R*Tree once per GeoProperty of the tenant.
    return (f"e.rid IN (SELECT gi.rid FROM geo_boxes gb CROSS JOIN geo_index gi WHERE {overlaps} "
            "AND gi.gid = gb.gid AND gi.tenant = ? AND gi.name = ?)",
            [*corners, tenant, geo.geoproperty])


# -- the q language -----------------------------------------------------------------------------
#
# Each q comparison becomes "an attribute row (one instance) with this name where the target
# matches". The target is the instance's value, one of its members (observedAt...), or a key path
# into a compound value. A value that is a list (valueList, objectList, a JSON array, the strings
# of a languageMap) matches when one element does, as in qlang.matches; literals compare only
# with values of their own JSON type, and date-time literals compare as instants through the
# q_temporal(kind, text) SQL function (qlang.temporal_key), which engines register.

# SQL comparison for each q operator; != and !~= negate == and ~= on a present target.
_SQL_OPS = {"==": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
_NEGATED = {"!=": "==", "!~=": "~="}
_NUMBER_TYPES = "('integer', 'real')"

# Member -> column. The default instance's datasetId is stored as '' but has none in q terms,
# and sub-attribute rows carry their instance's datasetId but have none of their own.
_MEMBER_COLUMNS = {"observedAt": "observed_at", "createdAt": "created_at",
                   "modifiedAt": "modified_at", "unitCode": "unit_code",
                   "datasetId": "(CASE WHEN depth = 0 THEN nullif(dataset_id, '') END)"}


def _json_path(keys: tuple[str, ...]) -> str:
    return "$" + "".join('."' + k.replace('"', '\\"') + '"' for k in keys)


def _sql_string(text: str) -> str:
    # A JSON path as an SQL literal, not a parameter, so one expression serves every use.
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Target:
    """Where a comparison looks: "row" (the instance's scalar columns), "member" (one text
    column), or "element" (j, a row of json_each / json_tree)."""

    source: str
    column: str = ""


_ROW = _Target("row")
_ELEMENT = _Target("element")


def _literal(target: _Target, literal: Any, op: str) -> tuple[str, list[Any]]:
    """A condition comparing one target with one scalar literal."""
    sql_op = "REGEXP" if op == "~=" else _SQL_OPS[op]
    if isinstance(literal, DateTime):
        key = temporal_key(literal.kind, literal.text)
        columns = {"row": ["value_text", "object"], "member": [target.column],
                   "element": ["j.value"]}[target.source]
        cond = " OR ".join(f"q_temporal(?, {c}) {sql_op} ?" for c in columns)
        guard = "j.type = 'text' AND " if target.source == "element" else ""
        return f"({guard}({cond}))", [x for _ in columns for x in (literal.kind, key)]
    if isinstance(literal, bool):  # before int: a bool is an int in Python
        if target.source == "member":
            return "0", []
        if target.source == "element":
            return "j.type = ?", ["true" if literal else "false"]
        return f"value_bool {sql_op} ?", [int(literal)]
    if isinstance(literal, (int, float)):
        if target.source == "member":
            return "0", []
        if target.source == "element":
            return f"(j.type IN {_NUMBER_TYPES} AND j.value {sql_op} ?)", [literal]
        return f"value_num {sql_op} ?", [literal]
    text = literal.text if isinstance(literal, Uri) else literal
    if target.source == "member":
        return f"{target.column} {sql_op} ?", [text]
    if target.source == "element":
        return f"(j.type = 'text' AND j.value {sql_op} ?)", [text]
    return f"(value_text {sql_op} ? OR object {sql_op} ?)", [text, text]


def _value(target: _Target, value: Any, op: str) -> tuple[str, list[Any]]:
    """A condition on one target for a whole q value: a literal, a range or a value list."""
    if isinstance(value, ValueList):
        parts = [_literal(target, v, op) for v in value.values]
        return "(" + " OR ".join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]
    if isinstance(value, Range):  # both ends on the same element
        if op != "==":
            raise BadRequestData(f"q: {op} takes a single value")
        low, high = _literal(target, value.low, ">="), _literal(target, value.high, "<=")
        return f"({low[0]} AND {high[0]})", low[1] + high[1]
    return _literal(target, value, op)


def _list_match(elements: str) -> str:
    """An attribute row whose value is a list (or a languageMap) with a matching element."""
    return (f"value_json IS NOT NULL AND ((json_type(value_json) = 'array' AND EXISTS (SELECT 1 "
            f"FROM json_each(value_json) j WHERE {elements})) OR (kind = 'LanguageProperty' AND "
            f"EXISTS (SELECT 1 FROM json_tree(value_json) j WHERE {elements})))")


def _matches(path: Path, op: str, value: Any) -> tuple[str, list[Any]]:
    """The positive test (==, ~=, >...) on one attribute row."""
    if path.member is not None:
        return _value(_Target("member", _MEMBER_COLUMNS[path.member]), value, op)
    elements, more = _value(_ELEMENT, value, op)
    if path.keys:
        where = _sql_string(_json_path(path.keys))
        # json_each of a scalar is that scalar, of an array its elements; an object is no match.
        return (f"(json_type(value_json, {where}) <> 'object' AND EXISTS (SELECT 1 FROM "
                f"json_each(value_json, {where}) j WHERE {elements}))", more)
    scalar, params = _value(_ROW, value, op)
    return f"({scalar} OR ({_list_match(elements)}))", params + more + more


def _present(path: Path) -> str:
    """Whether the path reaches something in the row (for !=, !~= and existence)."""
    if path.member is not None:
        return f"{_MEMBER_COLUMNS[path.member]} IS NOT NULL"
    if path.keys:
        return f"json_type(value_json, {_sql_string(_json_path(path.keys))}) IS NOT NULL"
    return "1"


def _check(node: Compare) -> None:
    if node.op in (">", ">=", "<", "<=") and isinstance(node.value, (Range, ValueList)):
        raise BadRequestData(f"q: {node.op} takes a single value")
    if isinstance(node.value, And | Or | Compare | Exists):
        raise BadRequestData("q: a value cannot be a query")


def _row_columns(literal: Any) -> list[str]:
    """The scalar columns of an attribute row a literal may be found in."""
    if isinstance(literal, bool):  # before int: a bool is an int in Python
        return ["value_bool"]
    if isinstance(literal, (int, float)):
        return ["value_num"]
    return ["value_text", "object"]  # strings, URIs, date-times (relationship objects too)


def _on_column(column: str, literal: Any, op: str) -> tuple[str, list[Any]]:
    sql_op = "REGEXP" if op == "~=" else _SQL_OPS[op]
    if isinstance(literal, DateTime):
        return (f"q_temporal(?, {column}) {sql_op} ?",
                [literal.kind, temporal_key(literal.kind, literal.text)])
    if isinstance(literal, bool):
        return f"{column} {sql_op} ?", [int(literal)]
    return f"{column} {sql_op} ?", [literal.text if isinstance(literal, Uri) else literal]


def _row_branches(value: Any, op: str) -> list[tuple[str, list[Any]]]:
    """The value's positive test on the scalar columns, one alternative per column."""
    if isinstance(value, ValueList):
        return [b for v in value.values for b in _row_branches(v, op)]
    if isinstance(value, Range):
        branches = []
        for column in _row_columns(value.low):
            low, high = _on_column(column, value.low, ">="), _on_column(column, value.high, "<=")
            branches.append((f"{low[0]} AND {high[0]}", low[1] + high[1]))
        return branches
    return [_on_column(column, value, op) for column in _row_columns(value)]


def _row_condition(node: Compare) -> tuple[str, list[Any]]:
    positive = _NEGATED.get(node.op)
    if positive is None:
        return _matches(node.path, node.op, node.value)
    # Clause 4.9: != (and !~=) holds on an instance whose target exists and does not match.
    cond, params = _matches(node.path, positive, node.value)
    return f"{_present(node.path)} AND NOT coalesce({cond}, 0)", params


def _row_name(path: Path) -> str:
    return attr_path(path.attr, path.sub) if path.sub else path.attr


_IN = "in"  # compile_q mode: every condition as an index range (`e.rid IN ...`)


def compile_q(node: Node, tenant: str, driver: Any = _IN) -> tuple[str, list[Any]]:
    """A q AST (names expanded) as a condition on `e`, the entities table. Conditions are
    index ranges (`e.rid IN`) when `driver` is "in", else probes, except the one leaf that
    `driver` is (see _driver)."""
    if isinstance(node, (And, Or)):
        parts = [compile_q(i, tenant, driver) for i in node.items]
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]
    if not (driver == _IN or driver is node):
        return _probe(node)
    rows = "SELECT rid FROM attrs WHERE tenant = ? AND name = ?"
    params: list[Any] = [tenant, _row_name(node.path)]
    if isinstance(node, Exists):
        present = _present(node.path)
        if present != "1":
            rows += f" AND {present}"
        return (f"e.rid {'NOT IN' if node.negated else 'IN'} ({rows})", params)
    _check(node)
    if node.op not in _NEGATED and node.path.member is None and not node.path.keys:
        # Index ranges rather than one filtered scan: one branch per scalar column the value
        # may sit in (attrs_by_num, _text, _object) and one for the rows holding lists (the
        # partial index attrs_by_json).
        branches = _row_branches(node.value, node.op)
        elements, ep = _value(_ELEMENT, node.value, node.op)
        sql = " UNION ALL ".join([f"{rows} AND {b}" for b, _ in branches]
                                 + [f"{rows} AND {_list_match(elements)}"])
        more = [x for _, bp in branches for x in params + bp] + params + ep + ep
        return f"e.rid IN ({sql})", more
    cond, more = _row_condition(node)
    return f"e.rid IN ({rows} AND {cond})", params + more


def _probe(node: Exists | Compare) -> tuple[str, list[Any]]:
    """A q leaf tested on one candidate entity, through attrs_by_entity."""
    rows = "SELECT 1 FROM attrs a WHERE a.rid = e.rid AND a.name = ?"
    params: list[Any] = [_row_name(node.path)]
    if isinstance(node, Exists):
        present = _present(node.path)
        if present != "1":
            rows += f" AND {present}"
        return f"{'NOT ' if node.negated else ''}EXISTS ({rows})", params
    _check(node)
    cond, more = _row_condition(node)
    return f"EXISTS ({rows} AND {cond})", params + more


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


def compile_scopeq(node: ScopeNode, tenant: str, probe: bool = False) -> tuple[str, list[Any]]:
    """A scopeQ AST as a condition on `e`: each pattern one indexed subquery (or a probe of the
    candidate's scopes)."""
    if isinstance(node, Pattern):
        cond, params = _scope_condition(node)
        if probe:
            return f"EXISTS (SELECT 1 FROM entity_scopes s WHERE s.rid = e.rid AND {cond})", params
        return (f"e.rid IN (SELECT rid FROM entity_scopes WHERE tenant = ? AND {cond})",
                [tenant, *params])
    parts = [compile_scopeq(item, tenant, probe) for item in node.items]
    joiner = " AND " if isinstance(node, ScopeAnd) else " OR "
    return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]
