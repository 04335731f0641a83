"""Geo-queries (clause 4.10): parse, prefilter box for the store's spatial index, exact check.

Pure. The exact check uses shapely on longitude/latitude as a plane for the topological
relations (as PostGIS does on `geometry`), and great-circle distances on a sphere of the WGS84
mean radius for `near`, so a `maxDistance` in metres means metres on the ground.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from broker.entities.geometry import check_geometry
from broker.errors import BadRequestData

EARTH_RADIUS_M = 6_371_008.8  # mean radius of the WGS84 ellipsoid (IUGG)
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180
RELATIONS = frozenset({"near", "within", "contains", "intersects", "equals", "disjoint",
                       "overlaps"})
DEFAULT_GEOPROPERTY = "location"


@dataclass(frozen=True)
class GeoQuery:
    relation: str
    geometry: dict[str, Any]
    shape: BaseGeometry
    geoproperty: str = DEFAULT_GEOPROPERTY
    max_distance: float | None = None
    min_distance: float | None = None


def _distance_param(text: str) -> tuple[str, float]:
    name, _, value = text.partition("==")
    try:
        number = float(value)
    except ValueError:
        raise BadRequestData(f"georel: {text!r} needs a number of metres") from None
    if name not in ("maxDistance", "minDistance") or number < 0 or not math.isfinite(number):
        raise BadRequestData(f"georel: {text!r} is not maxDistance==N or minDistance==N")
    return name, number


def parse_geo_query(georel: str | None, geometry: str | None, coordinates: Any,
                    geoproperty: str | None = None) -> GeoQuery | None:
    """A GeoQuery from the query parameters (or the JSON body form's members); None if absent."""
    if georel is None and geometry is None and coordinates is None:
        return None
    missing = [n for n, v in (("georel", georel), ("geometry", geometry),
                              ("coordinates", coordinates)) if v is None]
    if missing:
        raise BadRequestData(f"A geo-query needs georel, geometry and coordinates; missing "
                             f"{', '.join(missing)}")
    assert georel is not None and geometry is not None
    relation, *extras = georel.split(";")
    if relation not in RELATIONS:
        raise BadRequestData(f"georel {relation!r} is not one of {', '.join(sorted(RELATIONS))}")
    distances = dict(_distance_param(e) for e in extras)
    if relation == "near" and not distances:
        raise BadRequestData("georel near needs maxDistance==N or minDistance==N")
    if relation != "near" and distances:
        raise BadRequestData(f"georel {relation} takes no distance")
    if isinstance(coordinates, str):
        try:
            coordinates = orjson.loads(coordinates)
        except orjson.JSONDecodeError:
            raise BadRequestData(f"coordinates {coordinates!r} are not a JSON array") from None
    geo = {"type": geometry, "coordinates": coordinates}
    check_geometry(geo, "geo-query")
    if geometry == "GeometryCollection":
        raise BadRequestData("A geo-query geometry cannot be a GeometryCollection")
    try:
        parsed = shape(geo)
    except (ValueError, TypeError, shapely.errors.ShapelyError) as exc:
        raise BadRequestData(f"geo-query geometry is not valid: {exc}") from None
    return GeoQuery(relation, geo, parsed, geoproperty or DEFAULT_GEOPROPERTY,
                    distances.get("maxDistance"), distances.get("minDistance"))


def geo_query_from_json(obj: Any) -> GeoQuery | None:
    """The GeoQuery data type of POST /entityOperations/query and subscriptions (5.2.13)."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise BadRequestData("geoQ must be an object")
    return parse_geo_query(obj.get("georel"), obj.get("geometry"), obj.get("coordinates"),
                           obj.get("geoproperty"))


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def distance_m(a: BaseGeometry, b: BaseGeometry) -> float:
    """Great-circle distance in metres between the nearest points of two geometries (0 if they
    touch). Nearest points are found in the lon/lat plane, good at city scale."""
    if a.intersects(b):
        return 0.0
    p, q = nearest_points(a, b)
    return haversine_m(p.x, p.y, q.x, q.y)


_PREDICATES = {
    "within": lambda e, q: e.within(q) or e.equals(q),
    "contains": lambda e, q: e.contains(q),
    "intersects": lambda e, q: e.intersects(q),
    "equals": lambda e, q: e.equals(q),
    "disjoint": lambda e, q: e.disjoint(q),
    "overlaps": lambda e, q: e.overlaps(q),
}


def geo_matches(query: GeoQuery, value: Any) -> bool:
    """Whether an entity's GeoJSON geometry satisfies the query (the entity is the subject:
    `within` means the entity lies within the query geometry)."""
    try:
        subject = shape(value)
    except (ValueError, TypeError, AttributeError, shapely.errors.ShapelyError):
        return False
    if query.relation == "near":
        d = distance_m(subject, query.shape)
        if query.max_distance is not None and d > query.max_distance:
            return False
        return not (query.min_distance is not None and d < query.min_distance)
    return bool(_PREDICATES[query.relation](subject, query.shape))


def prefilter_box(query: GeoQuery) -> tuple[float, float, float, float] | None:
    """(min_lon, max_lon, min_lat, max_lat) that every match's bounding box intersects, or None
    when no box can bound the matches (disjoint, minDistance alone)."""
    if query.relation == "disjoint" or (query.relation == "near" and query.max_distance is None):
        return None
    min_x, min_y, max_x, max_y = query.shape.bounds
    if query.relation == "near":
        assert query.max_distance is not None
        # Grow by the distance in degrees; longitude degrees shrink with cos(latitude), taken
        # at the latitude farthest from the equator so the box never cuts a true match.
        grow_lat = query.max_distance / METRES_PER_DEGREE * 1.001
        min_y, max_y = max(-90.0, min_y - grow_lat), min(90.0, max_y + grow_lat)
        widest = max(abs(min_y), abs(max_y))
        cos_lat = math.cos(math.radians(widest))
        if cos_lat < 1e-6:
            return -180.0, 180.0, min_y, max_y
        grow_lon = grow_lat / cos_lat
        min_x, max_x = max(-180.0, min_x - grow_lon), min(180.0, max_x + grow_lon)
    return min_x, max_x, min_y, max_y
