"""EntityQuery -> SQL over the derived tables (migrations/sqlite, migrations/postgresql). Pure.

One compiler for both engines; what differs between them is a Dialect (sqlite_query.SQLITE,
postgres_query.POSTGRESQL): placeholders, the regex operator, boolean literals, where a JSON
value's elements come from, key paths, element type tests, temporal comparison and the geo box.

One condition drives the query as an index range (types on (tenant, type), q on the
(tenant, name, value) indexes, scopeQ on (tenant, scope), geo-queries on the index of bounding
boxes, ids on (tenant, id)); with Dialect.plan_driver the others are probes of each candidate
by rid (see _driver), else every condition is an index range and the engine's planner picks.
The exact geometry check happens on the candidates, in Python, on both engines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.errors import BadRequestData
from broker.query.geo import GeoQuery, bbox_prefilter, geo_matches
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
from broker.query.typeexpr import AllOf, NoneOf, TypeExpr, TypeName, Within
from broker.store.protocol import Entity, EntityQuery, EntitySelector, QueryResult
from broker.store.rows import attr_path


@dataclass(frozen=True)
class CompiledQuery:
    where: str
    params: tuple[Any, ...]
    exact_geo: bool  # candidates still need geo_matches; paginate after it


def exact_geo_page(candidates: Iterable[Entity], query: EntityQuery) -> QueryResult:
    """The page of the bounding-box candidates whose geometry really matches (the exact check
    happens here, after SQL's prefilter, so paging happens here too)."""
    geo = query.geo
    matches = [doc for doc in candidates if _geo_hit(geo, doc)]
    page = matches[query.offset:query.offset + query.limit]
    return QueryResult(page, len(matches) if query.count else None)


def _geo_hit(query: GeoQuery, entity: Entity) -> bool:
    return any(inst.get("type") == "GeoProperty" and geo_matches(query, inst.get("value"))
               for inst in entity["attrs"].get(query.geoproperty, ()))


@dataclass
class Params:
    """Collects parameter values in the order their placeholders appear in the text (each
    placeholder is used once, so `?` works as well as `$n`)."""

    placeholder: Callable[[int, str], str]  # (1-based position, cast) -> placeholder text
    values: list[Any] = field(default_factory=list)

    def __call__(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return self.placeholder(len(self.values), cast)


Elements = Callable[[], str]  # builds the element condition afresh (fresh placeholders)


@dataclass(frozen=True)
class Dialect:
    """What one engine's SQL spells differently. Functions take the Params to fill."""

    placeholder: Callable[[int, str], str]
    regex: str  # the operator matching a text against a regular expression
    true: str
    false: str
    plan_driver: bool  # the compiler picks the driving index (no planner statistics)
    union_branches: bool  # a q comparison on the value as a UNION ALL of index ranges
    in_list: Callable[[list[Any], Params], str]  # "IN (...)" for a column, or "= ANY(...)"
    # q_temporal & co.: (literal, SQL operator, text columns, params) -> condition
    temporal: Callable[[DateTime, str, list[str], Params], str]
    element_raw: str  # an element's text, for temporal functions
    element_text: str  # an element's text, for comparisons
    element_is_text: str
    element_bool: Callable[[bool, Params], str]
    element_number: Callable[[str, Any, Params], str]  # (SQL operator, literal, params)
    list_match: Callable[[Elements], str]  # a row whose value is a list/languageMap matching
    key_type: Callable[[tuple[str, ...]], str]  # the JSON type of what a key path reaches
    key_elements: Callable[[tuple[str, ...]], str]  # its elements, as a FROM item
    key_present: Callable[[tuple[str, ...]], str]
    geo_box: Callable[[str, str, tuple[float, float, float, float], bool, Params], str]

    def params(self) -> Params:
        return Params(self.placeholder)


def _types(expr: TypeExpr, tenant: str, probe: bool, p: Params) -> str:
    if isinstance(expr, TypeName):
        if probe:
            return ("EXISTS (SELECT 1 FROM entity_types t WHERE t.rid = e.rid AND "
                    f"t.type = {p(expr.name)})")
        return (f"e.rid IN (SELECT rid FROM entity_types WHERE tenant = {p(tenant)} "
                f"AND type = {p(expr.name)})")
    if isinstance(expr, Within):  # no type outside the list (an entity has at least one)
        if not expr.names:
            return "0 = 1"
        names = ", ".join(p(n) for n in expr.names)
        return ("NOT EXISTS (SELECT 1 FROM entity_types t WHERE t.rid = e.rid AND "
                f"t.type NOT IN ({names}))")
    if isinstance(expr, NoneOf):
        # Probed per candidate row on (rid, type): the IN (SELECT ...) form would gather every
        # entity of the excluded types first, however few rows the query reads.
        leaves = [item for item in expr.items if isinstance(item, TypeName)]
        if len(leaves) == len(expr.items):
            names = ", ".join(p(item.name) for item in leaves)
            return ("NOT EXISTS (SELECT 1 FROM entity_types t WHERE t.rid = e.rid AND "
                    f"t.type IN ({names}))")
        return "NOT (" + " OR ".join(_types(item, tenant, True, p) for item in expr.items) + ")"
    joiner = " AND " if isinstance(expr, AllOf) else " OR "
    return "(" + joiner.join(_types(item, tenant, probe, p) for item in expr.items) + ")"


def _selector(selector: EntitySelector, tenant: str, d: Dialect, p: Params) -> str:
    clauses: list[str] = []
    if selector.id is not None:
        clauses.append(f"e.id = {p(selector.id)}")
    if selector.id_pattern is not None:
        clauses.append(f"e.id {d.regex} {p(selector.id_pattern)}")
    if selector.types is not None:
        clauses.append(_types(selector.types, tenant, d.plan_driver, p))
    return "(" + (" AND ".join(clauses) or d.true) + ")"


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


def compile_where(tenant: str, query: EntityQuery, d: Dialect) -> CompiledQuery:
    p = d.params()
    driver = _driver(query) if d.plan_driver else _IN

    def probe(kind: str) -> bool:
        return d.plan_driver and driver != kind

    # Every subquery and probe is confined to the tenant already (rids are per tenant). With a
    # driver, the tenant term on `e` is kept out of the planner's reach ("+"), or SQLite would
    # walk every entity of the tenant instead.
    scan = driver in (None, _IN, _IDS) or bool(query.selectors)
    clauses: list[str] = [f"{'' if scan else '+'}e.tenant = {p(tenant)}"]
    if query.ids:
        clauses.append(f"e.id {d.in_list(list(query.ids), p)}")
    if query.id_pattern is not None:
        clauses.append(f"e.id {d.regex} {p(query.id_pattern)}")
    if query.types is not None:
        clauses.append(_types(query.types, tenant, probe(_TYPES), p))
    if query.selectors:
        clauses.append("(" + " OR ".join(_selector(s, tenant, d, p)
                                          for s in query.selectors) + ")")
    if query.attrs:
        if probe(_ATTRS):
            clauses.append("EXISTS (SELECT 1 FROM attrs a WHERE a.rid = e.rid AND a.name "
                           f"{d.in_list(sorted(query.attrs), p)})")
        else:
            clauses.append(f"e.rid IN (SELECT rid FROM attrs WHERE tenant = {p(tenant)} AND "
                           f"name {d.in_list(sorted(query.attrs), p)})")
    if query.q is not None:
        clauses.append(compile_q(query.q, tenant, d, p, _IN if driver == _ALL_Q else driver))
    if query.scope_q is not None:
        clauses.append(compile_scopeq(query.scope_q, tenant, d, p, probe(_SCOPE)))
    if query.geo is not None:
        clauses.append(_geo(query, tenant, probe(_GEO), d, p))
    return CompiledQuery(" AND ".join(clauses), tuple(p.values), query.geo is not None)


def _geo(query: EntityQuery, tenant: str, probe: bool, d: Dialect, p: Params) -> str:
    geo = query.geo
    assert geo is not None
    box = bbox_prefilter(geo)
    if box is not None:
        return d.geo_box(geo.geoproperty, tenant, box, probe, p)
    # No box to search (e.g. disjoint): every box of the geoproperty.
    if probe:
        return ("EXISTS (SELECT 1 FROM geo_index gi WHERE gi.rid = e.rid AND "
                f"gi.name = {p(geo.geoproperty)})")
    return (f"e.rid IN (SELECT gi.rid FROM geo_index gi WHERE gi.tenant = {p(tenant)} AND "
            f"gi.name = {p(geo.geoproperty)})")


# -- the q language -----------------------------------------------------------------------------
#
# Each q comparison becomes "an attribute row (one instance) with this name where the target
# matches". The target is the instance's value, one of its members (observedAt...), or a key path
# into a compound value. A value that is a list (valueList, objectList, a JSON array, the strings
# of a languageMap) matches when one element does, as in qlang.matches; literals compare only
# with values of their own JSON type, and date-time literals compare as instants through the
# SQL functions the engines provide (Dialect.temporal), which give qlang.temporal_key's keys.

# SQL comparison for each q operator (~= is Dialect.regex); != and !~= negate == and ~= on a
# present target.
_SQL_OPS = {"==": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
_NEGATED = {"!=": "==", "!~=": "~="}

# Member -> column. The default instance's datasetId is stored as '' but has none in q terms,
# and sub-attribute rows carry their instance's datasetId but have none of their own.
_MEMBER_COLUMNS = {"observedAt": "observed_at", "createdAt": "created_at",
                   "modifiedAt": "modified_at", "unitCode": "unit_code",
                   "datasetId": "(CASE WHEN depth = 0 THEN nullif(dataset_id, '') END)"}


def sql_string(text: str) -> str:
    """Text as an SQL literal, not a parameter, so one expression serves every use."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Target:
    """Where a comparison looks: "row" (the instance's scalar columns), "member" (one text
    column), or "element" (an element of a JSON value, Dialect.element_*)."""

    source: str
    column: str = ""


_ROW = _Target("row")
_ELEMENT = _Target("element")


def _sql_op(op: str, d: Dialect) -> str:
    return d.regex if op == "~=" else _SQL_OPS[op]


def _literal(target: _Target, literal: Any, op: str, d: Dialect, p: Params) -> str:
    """A condition comparing one target with one scalar literal."""
    sql_op = _sql_op(op, d)
    if isinstance(literal, DateTime):
        columns = {"row": ["value_text", "object"], "member": [target.column],
                   "element": [d.element_raw]}[target.source]
        guard = f"{d.element_is_text} AND " if target.source == "element" else ""
        return f"({guard}({d.temporal(literal, sql_op, columns, p)}))"
    if isinstance(literal, bool):  # before int: a bool is an int in Python
        if target.source == "member":
            return d.false
        if target.source == "element":
            return d.element_bool(literal, p)
        return f"value_bool {sql_op} {p(int(literal), '::int')}"
    if isinstance(literal, (int, float)):
        if target.source == "member":
            return d.false
        if target.source == "element":
            return d.element_number(sql_op, literal, p)
        return f"value_num {sql_op} {p(literal, '::float8')}"
    text = literal.text if isinstance(literal, Uri) else literal
    if target.source == "member":
        return f"{target.column} {sql_op} {p(text, '::text')}"
    if target.source == "element":
        return f"({d.element_is_text} AND {d.element_text} {sql_op} {p(text, '::text')})"
    return f"(value_text {sql_op} {p(text, '::text')} OR object {sql_op} {p(text, '::text')})"


def _value(target: _Target, value: Any, op: str, d: Dialect, p: Params) -> str:
    """A condition on one target for a whole q value: a literal, a range or a value list."""
    if isinstance(value, ValueList):
        return "(" + " OR ".join(_literal(target, v, op, d, p) for v in value.values) + ")"
    if isinstance(value, Range):  # both ends on the same element
        if op != "==":
            raise BadRequestData(f"q: {op} takes a single value")
        return (f"({_literal(target, value.low, '>=', d, p)} AND "
                f"{_literal(target, value.high, '<=', d, p)})")
    if isinstance(value, And | Or | Compare | Exists):
        raise BadRequestData("q: a value cannot be a query")
    return _literal(target, value, op, d, p)


def _matches(path: Path, op: str, value: Any, d: Dialect, p: Params) -> str:
    """The positive test (==, ~=, >...) on one attribute row."""
    if path.member is not None:
        return _value(_Target("member", _MEMBER_COLUMNS[path.member]), value, op, d, p)
    if path.keys:
        # The elements of a scalar are that scalar, of an array its elements; an object is no
        # match.
        return (f"({d.key_type(path.keys)} <> 'object' AND EXISTS (SELECT 1 FROM "
                f"{d.key_elements(path.keys)} WHERE {_value(_ELEMENT, value, op, d, p)}))")
    scalar = _value(_ROW, value, op, d, p)
    return f"({scalar} OR ({d.list_match(lambda: _value(_ELEMENT, value, op, d, p))}))"


def _present(path: Path, d: Dialect) -> str:
    """Whether the path reaches something in the row (for !=, !~= and existence)."""
    if path.member is not None:
        return f"{_MEMBER_COLUMNS[path.member]} IS NOT NULL"
    if path.keys:
        return d.key_present(path.keys)
    return d.true


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


def _on_column(column: str, literal: Any, op: str, d: Dialect, p: Params) -> str:
    sql_op = _sql_op(op, d)
    if isinstance(literal, DateTime):
        return d.temporal(literal, sql_op, [column], p)
    if isinstance(literal, bool):
        return f"{column} {sql_op} {p(int(literal))}"
    return f"{column} {sql_op} {p(literal.text if isinstance(literal, Uri) else literal)}"


def _row_branches(value: Any, op: str, d: Dialect, p: Params) -> list[Elements]:
    """The value's positive test on the scalar columns, one alternative per column (built
    when called, so that placeholders come in text order)."""
    if isinstance(value, ValueList):
        return [b for v in value.values for b in _row_branches(v, op, d, p)]
    if isinstance(value, Range):
        return [lambda c=column: (f"{_on_column(c, value.low, '>=', d, p)} AND "  # type: ignore[misc]
                                  f"{_on_column(c, value.high, '<=', d, p)}")
                for column in _row_columns(value.low)]
    return [lambda c=column: _on_column(c, value, op, d, p)  # type: ignore[misc]
            for column in _row_columns(value)]


def _row_condition(node: Compare, d: Dialect, p: Params) -> str:
    positive = _NEGATED.get(node.op)
    if positive is None:
        return _matches(node.path, node.op, node.value, d, p)
    # Clause 4.9: != (and !~=) holds on an instance whose target exists and does not match.
    cond = _matches(node.path, positive, node.value, d, p)
    return f"{_present(node.path, d)} AND NOT coalesce({cond}, {d.false})"


def _row_name(path: Path) -> str:
    return attr_path(path.attr, path.sub) if path.sub else path.attr


_IN = "in"  # compile_q mode: every condition as an index range (`e.rid IN ...`)


def compile_q(node: Node, tenant: str, d: Dialect, p: Params, driver: Any = _IN) -> str:
    """A q AST (names expanded) as a condition on `e`, the entities table. Conditions are
    index ranges (`e.rid IN`) when `driver` is "in", else probes, except the one leaf that
    `driver` is (see _driver)."""
    if isinstance(node, (And, Or)):
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(compile_q(i, tenant, d, p, driver) for i in node.items) + ")"
    if not (driver == _IN or driver is node):
        return _probe(node, d, p)
    name = _row_name(node.path)

    def rows() -> str:
        return f"SELECT rid FROM attrs WHERE tenant = {p(tenant)} AND name = {p(name)}"

    if isinstance(node, Exists):
        present = _present(node.path, d)
        sql = rows() + (f" AND {present}" if present != d.true else "")
        return f"e.rid {'NOT IN' if node.negated else 'IN'} ({sql})"
    _check(node)
    if (d.union_branches and node.op not in _NEGATED and node.path.member is None
            and not node.path.keys):
        # Index ranges rather than one filtered scan: one branch per scalar column the value
        # may sit in (attrs_by_num, _text, _object) and one for the rows holding lists (the
        # partial index attrs_by_json).
        branches = _row_branches(node.value, node.op, d, p)
        elements: Elements = lambda: _value(_ELEMENT, node.value, node.op, d, p)  # noqa: E731
        sql = " UNION ALL ".join([f"{rows()} AND {b()}" for b in branches]
                                 + [f"{rows()} AND {d.list_match(elements)}"])
        return f"e.rid IN ({sql})"
    return f"e.rid IN ({rows()} AND {_row_condition(node, d, p)})"


def _probe(node: Exists | Compare, d: Dialect, p: Params) -> str:
    """A q leaf tested on one candidate entity, through attrs_by_entity."""
    rows = f"SELECT 1 FROM attrs a WHERE a.rid = e.rid AND a.name = {p(_row_name(node.path))}"
    if isinstance(node, Exists):
        present = _present(node.path, d)
        if present != d.true:
            rows += f" AND {present}"
        return f"{'NOT ' if node.negated else ''}EXISTS ({rows})"
    _check(node)
    return f"EXISTS ({rows} AND {_row_condition(node, d, p)})"


# -- scopeQ (clause 4.19) -------------------------------------------------------------------


def _scope_condition(pattern: Pattern, d: Dialect, p: Params) -> str:
    """A condition on entity_scopes.scope; every branch ranges over the (tenant, scope) index."""
    prefix = literal_prefix(pattern)
    if is_exact(pattern):
        return f"scope = {p(prefix)}"
    # Every scope below `prefix` sorts between prefix + "/" and prefix + "0" ("0" follows "/").
    if ANY_LEVEL in pattern.levels:
        return (f"(scope > {p(prefix + '/')} AND scope < {p(prefix + '0')}) "
                f"AND scope {d.regex} {p(regex(pattern))}")
    if not prefix:  # "/#": any scope at all
        return d.true
    return f"(scope = {p(prefix)} OR (scope > {p(prefix + '/')} AND scope < {p(prefix + '0')}))"


def compile_scopeq(node: ScopeNode, tenant: str, d: Dialect, p: Params,
                   probe: bool = False) -> str:
    """A scopeQ AST as a condition on `e`: each pattern one indexed subquery (or a probe of the
    candidate's scopes)."""
    if isinstance(node, Pattern):
        if probe:
            return ("EXISTS (SELECT 1 FROM entity_scopes s WHERE s.rid = e.rid AND "
                    f"{_scope_condition(node, d, p)})")
        return (f"e.rid IN (SELECT rid FROM entity_scopes WHERE tenant = {p(tenant)} "
                f"AND {_scope_condition(node, d, p)})")
    joiner = " AND " if isinstance(node, ScopeAnd) else " OR "
    return "(" + joiner.join(compile_scopeq(i, tenant, d, p, probe) for i in node.items) + ")"
