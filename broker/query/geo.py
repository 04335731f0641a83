"""Geo-queries (ETSI GS CIM 009 clause 4.10): the public surface, and the box a store's spatial
index prefilters on. Pure.

A store answers a geo-query in two steps: its spatial index (an R*Tree in SQLite, GiST in
PostGIS) keeps the entities whose GeoProperty's bounding box intersects `bbox_prefilter(q)`,
then `geo_matches` decides on those candidates only. The box never leaves out a true match (a
hypothesis test checks it); it may let false candidates through.

Parsing lives in geo_parse, the exact check in geo_eval; both are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from broker.query.geo_eval import EARTH_RADIUS_M, distance_m, geo_matches, haversine_m
from broker.query.geo_parse import (
    DEFAULT_GEOPROPERTY,
    GEOMETRIES,
    RELATIONS,
    GeoQuery,
    geo_query_from_json,
    parse_geo_query,
)

__all__ = [
    "DEFAULT_GEOPROPERTY",
    "GEOMETRIES",
    "RELATIONS",
    "BBox",
    "GeoQuery",
    "bbox_prefilter",
    "distance_m",
    "geo_matches",
    "geo_query_from_json",
    "geometry_bbox",
    "haversine_m",
    "parse_geo_query",
]

BBox = tuple[float, float, float, float]  # (min_lon, min_lat, max_lon, max_lat): GeoJSON's order
# Added to maxDistance: covers the centimetres by which geo_eval's great-circle pieces stray
# from straight longitude/latitude edges, and any rounding.
PREFILTER_SLACK_M = 1.0
_ALL_LONGITUDES = (-180.0, 180.0)


def bbox_prefilter(query: GeoQuery) -> BBox | None:
    """The box that the bounding box of every matching entity geometry intersects; None when
    matches can lie anywhere (disjoint, near with minDistance only)."""
    if query.relation == "disjoint" or (query.relation == "near" and query.max_distance is None):
        return None
    bounds: BBox = query.shape.bounds
    if query.relation != "near":
        # within, contains, equals, intersects, overlaps all share a point with the query
        # geometry, so the entity's box meets the query geometry's box.
        return bounds
    assert query.max_distance is not None
    return _grown(bounds, query.max_distance + PREFILTER_SLACK_M)


def geometry_bbox(value: Any) -> BBox | None:
    """(min_lon, min_lat, max_lon, max_lat) of a GeoJSON geometry's positions (altitude
    ignored); None when it has none. Never raises, whatever the value."""
    positions = list(_positions(value))
    if not positions:
        return None
    lons, lats = [p[0] for p in positions], [p[1] for p in positions]
    return min(lons), min(lats), max(lons), max(lats)


def _grown(bounds: BBox, metres: float) -> BBox:
    """Every point within `metres` (great-circle) of some point of `bounds`."""
    min_lon, min_lat, max_lon, max_lat = bounds
    arc = metres / EARTH_RADIUS_M  # radians
    # A point `arc` away is at most `arc` of latitude away, exactly.
    grow_lat = math.degrees(arc)
    low, high = max(-90.0, min_lat - grow_lat), min(90.0, max_lat + grow_lat)
    # ... and at most asin(sin(arc) / cos(lat)) of longitude (the widest point of a spherical
    # cap), largest at the latitude farthest from the equator; when the cap holds a pole
    # (sin(arc) >= cos(lat)), every longitude is in reach.
    widest = math.radians(max(abs(min_lat), abs(max_lat)))
    reach = math.sin(arc) / math.cos(widest) if arc < math.pi / 2 else math.inf
    if reach >= 1.0:
        return _ALL_LONGITUDES[0], low, _ALL_LONGITUDES[1], high
    grow_lon = math.degrees(math.asin(reach))
    west, east = min_lon - grow_lon, max_lon + grow_lon
    if west < -180.0 or east > 180.0:
        # Across the antimeridian: one box cannot wrap around, so it spans every longitude.
        west, east = _ALL_LONGITUDES
    return west, low, east, high


def _positions(value: Any) -> Iterator[tuple[float, float]]:
    # Walked with explicit stacks, not recursion: a stored value of any depth cannot overflow.
    geometries, arrays = [value], []
    while geometries:
        geometry = geometries.pop()
        if not isinstance(geometry, dict):
            continue
        if geometry.get("type") == "GeometryCollection":
            members = geometry.get("geometries")
            geometries.extend(members if isinstance(members, list) else ())
        else:
            arrays.append(geometry.get("coordinates"))
    while arrays:
        item = arrays.pop()
        if not isinstance(item, list):
            continue
        if len(item) >= 2 and _is_number(item[0]) and _is_number(item[1]):
            yield float(item[0]), float(item[1])
        else:
            arrays.extend(item)


def _is_number(x: Any) -> bool:
    if not isinstance(x, int | float) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:  # an int beyond any float
        return False
