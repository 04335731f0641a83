"""GeoJSON geometry validation (RFC 7946 section 3.1), for GeoProperty values. Pure."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from broker.entities.kinds import GEOMETRY_TYPES
from broker.errors import BadRequestData

MAX_GEOMETRIES = 1000  # members of a GeometryCollection: a bound on the work per attribute
# RFC 7946 3.1.1: a position is two or three numbers ("SHOULD NOT" extend beyond three).
POSITION_SIZES = (2, 3)
MIN_LINE = 2  # RFC 7946 3.1.4: a LineString has two or more positions
MIN_RING = 4  # RFC 7946 3.1.6: a linear ring is closed, with four or more positions


def _number(c: Any) -> bool:
    if isinstance(c, bool):
        return False
    return isinstance(c, int) or (isinstance(c, float) and math.isfinite(c))


def _position(p: Any, where: str) -> None:
    if not isinstance(p, list) or len(p) not in POSITION_SIZES or not all(map(_number, p)):
        raise BadRequestData(f"{where}: a position is [longitude, latitude] or "
                             f"[longitude, latitude, altitude] in numbers, not {p!r}")
    if not (-180 <= p[0] <= 180 and -90 <= p[1] <= 90):
        raise BadRequestData(f"{where}: position {p} is outside longitude -180..180, "
                             "latitude -90..90 (WGS 84, RFC 7946 section 4)")


def _positions(minimum: int) -> Callable[[Any, str], None]:
    def check(ps: Any, where: str) -> None:
        if not isinstance(ps, list) or len(ps) < minimum:
            raise BadRequestData(f"{where}: needs a list of at least {minimum} positions")
        for p in ps:
            _position(p, where)
    return check


def _ring(ring: Any, where: str) -> None:
    _positions(MIN_RING)(ring, where)
    if ring[0] != ring[-1]:
        raise BadRequestData(f"{where}: a polygon ring must be closed (first == last position)")


def _polygon(rings: Any, where: str) -> None:
    if not isinstance(rings, list) or not rings:
        raise BadRequestData(f"{where}: a Polygon is a non-empty list of linear rings")
    for ring in rings:
        _ring(ring, where)


def _each(check: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    def run(items: Any, where: str) -> None:
        if not isinstance(items, list):
            raise BadRequestData(f"{where}: coordinates must be a list")
        for item in items:
            check(item, where)
    return run


# The shape of "coordinates" for each geometry type (RFC 7946 3.1.2-3.1.7).
_COORDINATES: dict[str, Callable[[Any, str], None]] = {
    "Point": _position,
    "MultiPoint": _positions(0),
    "LineString": _positions(MIN_LINE),
    "MultiLineString": _each(_positions(MIN_LINE)),
    "Polygon": _polygon,
    "MultiPolygon": _each(_polygon),
}


def is_geometry(value: Any) -> bool:
    """Whether a value looks like a GeoJSON geometry (a concise GeoProperty), valid or not."""
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
        if not isinstance(members, list) or len(members) > MAX_GEOMETRIES:
            raise BadRequestData(f"{where}: geometries must be a list of at most "
                                 f"{MAX_GEOMETRIES} geometries")
        for member in members:
            if isinstance(member, dict) and member.get("type") == "GeometryCollection":
                raise BadRequestData(f"{where}: nested GeometryCollections are not allowed "
                                     "(RFC 7946 3.1.8)")
            check_geometry(member, where)
        return
    check = _COORDINATES.get(kind) if isinstance(kind, str) else None
    if check is None:
        raise BadRequestData(f"{where}: {kind!r} is not a GeoJSON geometry type")
    if "coordinates" not in value:
        raise BadRequestData(f"{where}: a {kind} needs coordinates")
    check(value["coordinates"], where)
