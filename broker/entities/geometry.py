"""GeoJSON geometry validation (RFC 7946 §3.1), for GeoProperty values. Pure."""

from __future__ import annotations

from typing import Any

from broker.entities.kinds import GEOMETRY_TYPES
from broker.errors import BadRequestData

_MAX_GEOMETRIES = 1000  # members of a GeometryCollection; a bound on work per attribute


def _position(p: Any, where: str) -> None:
    if not isinstance(p, list) or not 2 <= len(p) <= 3 or not all(
        isinstance(c, (int, float)) and not isinstance(c, bool) for c in p
    ):
        raise BadRequestData(f"{where}: a position is [longitude, latitude(, altitude)]")
    if not (-180 <= p[0] <= 180 and -90 <= p[1] <= 90):
        raise BadRequestData(f"{where}: position {p} is outside longitude ±180, latitude ±90")


def _positions(ps: Any, where: str, minimum: int) -> None:
    if not isinstance(ps, list) or len(ps) < minimum:
        raise BadRequestData(f"{where}: needs a list of at least {minimum} positions")
    for p in ps:
        _position(p, where)


def _ring(ring: Any, where: str) -> None:
    _positions(ring, where, 4)
    if ring[0] != ring[-1]:
        raise BadRequestData(f"{where}: a polygon ring must be closed (first == last position)")


def _polygon(rings: Any, where: str) -> None:
    if not isinstance(rings, list) or not rings:
        raise BadRequestData(f"{where}: a Polygon is a non-empty list of linear rings")
    for ring in rings:
        _ring(ring, where)


def _many(check: Any, minimum: int = 0) -> Any:
    def run(items: Any, where: str) -> None:
        if not isinstance(items, list):
            raise BadRequestData(f"{where}: coordinates must be a list")
        for item in items:
            check(item, where) if minimum == 0 else check(item, where, minimum)
    return run


_CHECKS = {
    "Point": _position,
    "MultiPoint": lambda c, w: _positions(c, w, 0),
    "LineString": lambda c, w: _positions(c, w, 2),
    "MultiLineString": _many(_positions, 2),
    "Polygon": _polygon,
    "MultiPolygon": _many(_polygon),
}


def is_geometry(value: Any) -> bool:
    """Whether a value looks like a GeoJSON geometry (for concise input)."""
    kind = value.get("type") if isinstance(value, dict) else None
    return isinstance(kind, str) and kind in GEOMETRY_TYPES \
        and ("coordinates" in value or "geometries" in value)


def check_geometry(value: Any, where: str) -> None:
    """Raise BadRequestData unless `value` is a valid GeoJSON geometry."""
    if not isinstance(value, dict):
        raise BadRequestData(f"{where}: a GeoProperty value must be a GeoJSON geometry object")
    kind = value.get("type")
    if kind == "GeometryCollection":
        members = value.get("geometries")
        if not isinstance(members, list) or len(members) > _MAX_GEOMETRIES:
            raise BadRequestData(f"{where}: geometries must be a list of geometries")
        for member in members:
            if isinstance(member, dict) and member.get("type") == "GeometryCollection":
                raise BadRequestData(f"{where}: nested GeometryCollections are not allowed")
            check_geometry(member, where)
        return
    check = _CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        raise BadRequestData(f"{where}: {kind!r} is not a GeoJSON geometry type")
    if "coordinates" not in value:
        raise BadRequestData(f"{where}: a {kind} needs coordinates")
    check(value["coordinates"], where)
