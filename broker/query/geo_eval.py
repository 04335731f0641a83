"""Exact evaluation of a GeoQuery against an entity's GeoJSON geometry. Pure.

Topological relations (within, contains, intersects, equals, disjoint, overlaps) are the DE-9IM
predicates of OGC Simple Features on longitude/latitude taken as a plane, computed by GEOS
(shapely) - the library and the semantics of PostGIS's ST_Within, ST_Contains, ... on
`geometry(4326)`, which the Postgres engine uses, so both engines give the same answer. At the
edges (tested): a point on a polygon's border is not `within` it (the border is not the
interior) but it `intersects` it; a point inside a hole is `disjoint` from the polygon; a line
lying along the border is not `within`.

`near` measures metres on a sphere of the WGS84 mean radius, between the nearest points of the
two geometries (0 when they intersect, so maxDistance==0 means "touching"). An edge is the
straight line between its positions in longitude/latitude (RFC 7946 section 3.1.1), as for the
topological relations; it is cut into pieces of at most DENSIFY_DEG and the great-circle
distance to those pieces is exact, so the error is a few centimetres at any distance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, Polygon, shape
from shapely.geometry.base import BaseGeometry

from broker.query.geo_parse import GeoQuery

EARTH_RADIUS_M = 6_371_008.8  # mean radius of the WGS84 ellipsoid, (2a + b) / 3 (IUGG)
# Longest piece an edge is cut into before measuring: ~1.1 km, whose great-circle arc strays
# from the straight longitude/latitude line by under 3 cm.
DENSIFY_DEG = 0.01
_BLOCK = 1 << 16  # vertex x edge pairs measured per numpy block: a few MB at most
_POINT_EDGE = 1e-12  # |a x b| below this (an edge under ~6 micrometres): measured as a point

Predicate = Callable[[BaseGeometry, BaseGeometry], Any]
# Clause 4.10: the entity's GeoProperty is the subject, the query geometry the object.
_PREDICATES: dict[str, Predicate] = {
    "within": shapely.within,
    "contains": shapely.contains,
    "intersects": shapely.intersects,
    "equals": shapely.equals,
    "disjoint": shapely.disjoint,
    "overlaps": shapely.overlaps,
}
# What shapely raises on a GeoJSON-looking value that is not a geometry.
_NOT_A_GEOMETRY = (ValueError, TypeError, AttributeError, IndexError, KeyError,
                   shapely.errors.ShapelyError)


def geo_matches(query: GeoQuery, value: Any) -> bool:
    """Whether an entity's GeoProperty value (a GeoJSON geometry) satisfies the query.
    Never raises: a value that is not a geometry matches nothing."""
    subject = _subject(value)
    if subject is None:
        return False
    try:
        if query.relation == "near":
            return not subject.is_empty and _in_range(query, distance_m(subject, query.shape))
        return bool(_PREDICATES[query.relation](subject, query.shape))
    except shapely.errors.GEOSException:  # GEOS refusing an invalid stored geometry
        return False


def distance_m(a: BaseGeometry, b: BaseGeometry) -> float:
    """Metres on the sphere between the nearest points of two non-empty geometries; 0 if they
    intersect. Raises ValueError on an empty geometry, which has no distance."""
    if a.is_empty or b.is_empty:
        raise ValueError("an empty geometry has no distance")
    if a.intersects(b):
        return 0.0
    if isinstance(a, Point) and isinstance(b, Point):  # the common case, 100 times faster
        return haversine_m(a.x, a.y, b.x, b.y)
    runs_a, runs_b = _runs(a), _runs(b)
    # Two geometries that do not cross are nearest at a vertex of one of them.
    return EARTH_RADIUS_M * min(_nearest_angle(_vertices(runs_a), *_edges(runs_b)),
                                _nearest_angle(_vertices(runs_b), *_edges(runs_a)))


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two positions."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _in_range(query: GeoQuery, distance: float) -> bool:
    # Both bounds inclusive: maxDistance==0 keeps what touches the query geometry.
    return ((query.max_distance is None or distance <= query.max_distance)
            and (query.min_distance is None or distance >= query.min_distance))


def _subject(value: Any) -> BaseGeometry | None:
    if not isinstance(value, dict):
        return None
    try:
        return shape(value)
    except _NOT_A_GEOMETRY:
        return None


def _unit(lonlat: np.ndarray) -> np.ndarray:
    """Unit vectors of longitude/latitude rows in degrees, as a 3 x n array (x, y, z rows)."""
    lon, lat = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    return np.array((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Column by column: np.cross costs ten times more on the small arrays measured here.
    return np.array((u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2],
                     u[0] * v[1] - u[1] * v[0]))


def _runs(g: BaseGeometry) -> list[np.ndarray]:
    """The geometry as runs of longitude/latitude positions whose neighbours are its edges, cut
    into pieces of at most DENSIFY_DEG; a point is a run of one."""
    return [_densified(run) for run in _paths(g)]


def _paths(g: BaseGeometry) -> Iterator[np.ndarray]:
    if g.is_empty:
        return
    if isinstance(g, Polygon):
        for ring in (g.exterior, *g.interiors):
            yield shapely.get_coordinates(ring)
    elif hasattr(g, "geoms"):  # Multi* and GeometryCollection
        for part in g.geoms:
            yield from _paths(part)
    else:  # Point, LineString
        yield shapely.get_coordinates(g)


def _densified(run: np.ndarray) -> np.ndarray:
    if len(run) < 2:
        return run
    pieces = np.ceil(np.abs(np.diff(run, axis=0)).max(axis=1) / DENSIFY_DEG).astype(int)
    pieces = np.maximum(pieces, 1)
    if pieces.max() == 1:
        return run
    edge = np.repeat(np.arange(len(pieces)), pieces)  # which edge each new position is on
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    along = (np.arange(len(edge)) - first) / pieces[edge]  # 0 <= along < 1 on that edge
    cut = run[edge] + (run[edge + 1] - run[edge]) * along[:, None]
    return np.vstack((cut, run[-1:]))


def _vertices(runs: list[np.ndarray]) -> np.ndarray:
    return _unit(np.concatenate(runs))


def _edges(runs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) as unit vectors; a point is an edge of length 0."""
    starts = [run if len(run) == 1 else run[:-1] for run in runs]
    ends = [run if len(run) == 1 else run[1:] for run in runs]
    return _unit(np.concatenate(starts)), _unit(np.concatenate(ends))


def _nearest_angle(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Smallest angle (radians) from any of `points` to any great-circle arc a[:, i] -> b[:, i]
    (all 3 x n arrays of unit vectors)."""
    normal = _cross(a, b)
    length = np.sqrt((normal * normal).sum(axis=0))
    is_arc = length > _POINT_EDGE
    pole = normal / np.where(is_arc, length, 1.0)
    # A point projects onto the minor arc a -> b iff it lies on the inner side of both the
    # great circle through a and the pole and the one through b and the pole.
    after_a, before_b = _cross(normal, a), _cross(b, normal)
    best = math.inf
    step = max(1, _BLOCK // a.shape[1])
    for start in range(0, points.shape[1], step):
        p = points[:, start:start + step].T  # k x 3
        on_arc = is_arc & (p @ after_a >= 0) & (p @ before_b >= 0)
        cross_track = np.arcsin(np.minimum(np.abs(p @ pole), 1.0))
        to_end = np.minimum(_chord_angle(p, a), _chord_angle(p, b))
        best = min(best, float(np.where(on_arc, cross_track, to_end).min()))
    return best


def _chord_angle(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """k x m angles between rows of p (k x 3) and columns of q (3 x m)."""
    # From the chord, not the dot product: exact for the centimetres that acos would lose.
    chord = np.sqrt(sum((p[:, i, None] - q[i]) ** 2 for i in range(3)))
    return 2 * np.arcsin(np.minimum(chord / 2, 1.0))
