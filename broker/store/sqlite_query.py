"""EntityQuery -> SQLite SQL over the derived tables of migrations/sqlite. Pure.

Types use the (tenant, type) index, attribute presence the (tenant, name, ...) indexes, and
geo-queries the R*Tree of bounding boxes; the exact geometry check happens on the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.query.geo import prefilter_box
from broker.query.typeexpr import AllOf, TypeExpr, TypeName
from broker.store.protocol import EntityQuery


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
    if query.attrs:
        marks = ",".join("?" * len(query.attrs))
        clauses.append(f"e.rid IN (SELECT rid FROM attrs WHERE tenant = ? AND name IN ({marks}))")
        params.extend([tenant, *sorted(query.attrs)])
    if query.geo is not None:
        box = prefilter_box(query.geo)
        sql = ("e.rid IN (SELECT gi.rid FROM geo_index gi JOIN geo_boxes gb ON gb.gid = gi.gid "
               "WHERE gi.tenant = ? AND gi.name = ?")
        params.extend([tenant, query.geo.geoproperty])
        if box is not None:
            sql += " AND gb.max_x >= ? AND gb.min_x <= ? AND gb.max_y >= ? AND gb.min_y <= ?"
            params.extend([box[0], box[1], box[2], box[3]])
        clauses.append(sql + ")")
    return CompiledQuery(" AND ".join(clauses), tuple(params), query.geo is not None)
