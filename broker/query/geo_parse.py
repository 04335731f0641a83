"""Parsing of NGSI-LD geo-queries (ETSI GS CIM 009 clause 4.10), into a `GeoQuery`. Pure.

Two forms, one result: the query parameters of clause 5.7.2 (georel, geometry, coordinates,
geoproperty; coordinates a JSON array in a string) and the GeoQuery data type of clause 5.2.13,
used by POST /entityOperations/query and subscriptions (coordinates an array or a string).
Every bad input raises BadRequestData with a detail that names the parameter at fault.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from broker.entities.geometry import check_geometry
from broker.errors import BadRequestData

DEFAULT_GEOPROPERTY = "location"  # clause 4.10: the GeoProperty queried when none is named
# Clause 4.10: the topological relations carry the DE-9IM meaning of OGC Simple Features
# (ISO 19125-1), the entity's GeoProperty being the subject: "within" = entity within geometry.
RELATIONS = frozenset({"near", "within", "contains", "intersects", "equals", "disjoint",
                       "overlaps"})
# Clause 4.10: the geometries of a geo-query; GeometryCollection is not one of them.
GEOMETRIES = frozenset({"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                        "MultiPolygon"})
DISTANCES = ("maxDistance", "minDistance")  # near;maxDistance==N, near;minDistance==N (metres)
# A bound on the work one query can ask of the exact check, which is O(query x entity positions).
MAX_QUERY_POSITIONS = 10_000
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")  # a non-negative number


@dataclass(frozen=True)
class GeoQuery:
    """A parsed geo-query: the relation, the query geometry and the GeoProperty it applies to."""

    relation: str
    geometry: dict[str, Any]  # the query geometry as GeoJSON
    shape: BaseGeometry  # the same, for shapely; valid and non-empty
    geoproperty: str = DEFAULT_GEOPROPERTY  # a term here; the HTTP layer expands it
    max_distance: float | None = None  # metres, inclusive
    min_distance: float | None = None  # metres, inclusive


def parse_geo_query(georel: Any, geometry: Any, coordinates: Any,
                    geoproperty: Any = None) -> GeoQuery | None:
    """The GeoQuery of the four geo-query parameters; None if none of them is given."""
    given = {"georel": georel, "geometry": geometry, "coordinates": coordinates,
             "geoproperty": geoproperty}
    if all(v is None for v in given.values()):
        return None
    missing = [name for name, v in given.items() if v is None and name != "geoproperty"]
    if missing:
        raise BadRequestData(f"A geo-query needs georel, geometry and coordinates; "
                             f"{', '.join(missing)} missing")
    relation, distances = _georel(georel)
    geo = {"type": _geometry_type(geometry), "coordinates": _coordinates(coordinates)}
    return GeoQuery(relation, geo, _shape(geo), _geoproperty(geoproperty),
                    distances.get("maxDistance"), distances.get("minDistance"))


def geo_query_from_json(obj: Any) -> GeoQuery | None:
    """The GeoQuery data type (clause 5.2.13) of a query body or subscription; None for None."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise BadRequestData("geoQ must be a JSON object with georel, geometry and coordinates")
    query = parse_geo_query(obj.get("georel"), obj.get("geometry"), obj.get("coordinates"),
                            obj.get("geoproperty"))
    if query is None:
        raise BadRequestData("geoQ needs georel, geometry and coordinates")
    return query


def _georel(text: Any) -> tuple[str, dict[str, float]]:
    if not isinstance(text, str):
        raise BadRequestData("georel must be a string")
    relation, *modifiers = text.split(";")
    if relation not in RELATIONS:
        raise BadRequestData(f"georel {relation!r} is not one of {', '.join(sorted(RELATIONS))}")
    distances: dict[str, float] = {}
    for modifier in modifiers:
        name, value = _distance(modifier)
        if name in distances:
            raise BadRequestData(f"georel: {name} is given twice")
        distances[name] = value
    if relation == "near" and not distances:
        raise BadRequestData("georel near needs near;maxDistance==N or near;minDistance==N "
                             "(metres)")
    if relation != "near" and distances:
        raise BadRequestData(f"georel {relation} takes no distance; only near does")
    return relation, distances


def _distance(modifier: str) -> tuple[str, float]:
    name, sep, value = modifier.partition("==")
    if not sep or name not in DISTANCES:
        raise BadRequestData(f"georel: {modifier!r} is not maxDistance==N or minDistance==N")
    number = float(value) if _NUMBER.fullmatch(value) else math.nan
    if not math.isfinite(number):
        raise BadRequestData(f"georel: {name} needs a non-negative number of metres, "
                             f"not {value!r}")
    return name, number


def _geometry_type(value: Any) -> str:
    if not isinstance(value, str) or value not in GEOMETRIES:
        raise BadRequestData(f"geometry {value!r} is not one of {', '.join(sorted(GEOMETRIES))}")
    return value


def _coordinates(value: Any) -> list[Any]:
    if isinstance(value, str):
        value = _json_array(value)
    if not isinstance(value, list):
        raise BadRequestData("coordinates must be a JSON array of positions, e.g. [23.7967,44.319]")
    return value


def _json_array(text: str) -> Any:
    # A client that encodes the parameter twice leaves "%5B...%5D" after the server's decoding;
    # a JSON array never holds "%", so decoding once more is safe.
    for candidate in (text, unquote(text)) if "%" in text else (text,):
        try:
            return orjson.loads(candidate)
        except ValueError:  # orjson.JSONDecodeError, and text that is not valid UTF-8
            continue
    raise BadRequestData(f"coordinates {text[:80]!r} are not a JSON array")


def _shape(geo: dict[str, Any]) -> BaseGeometry:
    check_geometry(geo, "coordinates")  # nesting, closed rings, lon ±180 and lat ±90 (RFC 7946)
    try:
        parsed = shape(geo)
    except (ValueError, TypeError, shapely.errors.ShapelyError) as exc:
        raise BadRequestData(f"coordinates do not make a {geo['type']}: {exc}") from None
    if parsed.is_empty:
        raise BadRequestData(f"coordinates: the {geo['type']} has no positions")
    if shapely.get_num_coordinates(parsed) > MAX_QUERY_POSITIONS:
        raise BadRequestData(f"coordinates: a geo-query geometry has at most "
                             f"{MAX_QUERY_POSITIONS} positions")
    # An invalid query geometry (a self-intersecting ring, overlapping polygons) has no
    # well-defined DE-9IM relations; PostGIS gives undefined answers, so refuse it up front.
    if not parsed.is_valid:
        raise BadRequestData(f"coordinates: the {geo['type']} is not valid "
                             f"({shapely.is_valid_reason(parsed)})")
    return parsed


def _geoproperty(value: Any) -> str:
    if value is None:
        return DEFAULT_GEOPROPERTY
    if not isinstance(value, str) or not value.isprintable() or not value or " " in value:
        raise BadRequestData(f"geoproperty {value!r} is not an attribute name")
    return value
