"""Geo-query parsing (clause 4.10, the parameters of 5.7.2 and the GeoQuery type of 5.2.13)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, Polygon

from broker.errors import BadRequestData
from broker.query.geo import GeoQuery, geo_query_from_json, parse_geo_query
from broker.query.geo_parse import MAX_QUERY_POSITIONS

MIHAI_VITEAZUL = "[23.7967,44.3190]"  # Piața Mihai Viteazul, Craiova
# Around Timișoara's centre (Piața Victoriei ~ 45.7537 N, 21.2257 E).
TIMISOARA = [[[21.21, 45.745], [21.24, 45.745], [21.24, 45.765], [21.21, 45.765], [21.21, 45.745]]]


def bad(georel: Any, geometry: Any, coordinates: Any, geoproperty: Any = None) -> str:
    with pytest.raises(BadRequestData) as caught:
        parse_geo_query(georel, geometry, coordinates, geoproperty)
    return caught.value.detail


def test_no_geo_query_is_none() -> None:
    assert parse_geo_query(None, None, None, None) is None
    assert parse_geo_query(None, None, None) is None


@pytest.mark.parametrize(("given", "missing"), [
    ({"geometry": "Point", "coordinates": MIHAI_VITEAZUL}, "georel missing"),
    ({"georel": "within", "coordinates": "[1,2]"}, "geometry missing"),
    ({"georel": "within", "geometry": "Point"}, "coordinates missing"),
    ({"geoproperty": "location"}, "georel, geometry, coordinates missing"),
])
def test_a_partial_geo_query_names_what_is_missing(given: dict[str, Any], missing: str) -> None:
    args = {"georel": None, "geometry": None, "coordinates": None, "geoproperty": None} | given
    assert missing in bad(**args)


def test_near_with_a_point() -> None:
    q = parse_geo_query("near;maxDistance==300", "Point", MIHAI_VITEAZUL)
    assert q == GeoQuery("near", {"type": "Point", "coordinates": [23.7967, 44.319]},
                         Point(23.7967, 44.319), "location", 300.0, None)


def test_near_distances() -> None:
    q = parse_geo_query("near;minDistance==10.5", "Point", MIHAI_VITEAZUL)
    assert q is not None and (q.min_distance, q.max_distance) == (10.5, None)
    q = parse_geo_query("near;maxDistance==2000;minDistance==100", "Point", MIHAI_VITEAZUL)
    assert q is not None and (q.min_distance, q.max_distance) == (100.0, 2000.0)
    q = parse_geo_query("near;maxDistance==0", "Point", MIHAI_VITEAZUL)
    assert q is not None and q.max_distance == 0.0
    q = parse_geo_query("near;maxDistance==1.5e3", "Point", MIHAI_VITEAZUL)
    assert q is not None and q.max_distance == 1500.0


def test_polygon_from_a_url_decoded_string_and_a_geoproperty() -> None:
    q = parse_geo_query("within", "Polygon", str(TIMISOARA), "observationSpace")
    assert q is not None
    assert q.shape.equals(Polygon(TIMISOARA[0]))
    assert q.geometry == {"type": "Polygon", "coordinates": TIMISOARA}
    assert q.geoproperty == "observationSpace"


def test_coordinates_encoded_twice_are_decoded_once_more() -> None:
    q = parse_geo_query("near;maxDistance==5", "Point", "%5B23.7967%2C44.3190%5D")
    assert q is not None and q.shape.equals(Point(23.7967, 44.319))


def test_every_geometry_type() -> None:
    shapes = {
        "Point": "[21.2257,45.7537]",
        "MultiPoint": "[[21.2257,45.7537],[23.7967,44.319]]",
        "LineString": "[[23.7967,44.319],[23.7951,44.3164]]",
        "MultiLineString": "[[[23.7967,44.319],[23.7951,44.3164]],[[21.2,45.7],[21.3,45.8]]]",
        "Polygon": str(TIMISOARA),
        "MultiPolygon": str([TIMISOARA, [[[23.79, 44.31], [23.8, 44.31], [23.8, 44.32],
                                          [23.79, 44.31]]]]),
    }
    for geometry, coordinates in shapes.items():
        q = parse_geo_query("intersects", geometry, coordinates)
        assert q is not None and q.shape.geom_type == geometry


def test_altitude_is_accepted() -> None:
    q = parse_geo_query("near;maxDistance==5", "Point", "[23.7967,44.3190,95.0]")
    assert q is not None and q.shape.has_z


@pytest.mark.parametrize(("georel", "detail"), [
    ("near", "needs near;maxDistance==N"),
    ("near;maxDistance==-1", "non-negative number"),
    ("near;maxDistance==x", "non-negative number"),
    ("near;maxDistance==", "non-negative number"),
    ("near;maxDistance==inf", "non-negative number"),
    ("near;maxDistance==nan", "non-negative number"),
    ("near;maxDistance==1e999", "non-negative number"),
    ("near;maxDistance== 5", "non-negative number"),
    ("near;maxDistance=5", "is not maxDistance==N"),
    ("near;maxDistance:5", "is not maxDistance==N"),
    ("near;distance==5", "is not maxDistance==N"),
    ("near;maxDistance==1;maxDistance==2", "given twice"),
    ("within;maxDistance==5", "takes no distance"),
    ("Within", "is not one of"),
    ("around", "is not one of"),
    ("coveredBy", "is not one of"),
    ("", "is not one of"),
])
def test_bad_georel(georel: str, detail: str) -> None:
    assert detail in bad(georel, "Point", MIHAI_VITEAZUL)


@pytest.mark.parametrize("geometry", ["Circle", "point", "GeometryCollection", "", 5])
def test_bad_geometry(geometry: Any) -> None:
    assert "is not one of" in bad("intersects", geometry, "[1,2]")


@pytest.mark.parametrize(("geometry", "coordinates", "detail"), [
    ("Point", "not json", "not a JSON array"),
    ("Point", "[23.79,44.31", "not a JSON array"),
    ("Point", '{"lon":23.79}', "must be a JSON array"),
    ("Point", "5", "must be a JSON array"),
    ("Point", 5, "must be a JSON array"),
    ("Point", "[200,44]", "outside longitude"),
    ("Point", "[23.79,95]", "outside longitude -180..180, latitude -90..90"),
    ("Point", "[true,false]", "position is [longitude, latitude"),
    ("Point", '["23.79","44.31"]', "position is [longitude, latitude"),
    ("Point", "[1,2,3,4]", "position is [longitude, latitude"),
    ("Point", "[[23.79,44.31]]", "position is [longitude, latitude"),
    ("LineString", "[[23.79,44.31]]", "at least 2 positions"),
    ("LineString", "[23.79,44.31]", "position is [longitude, latitude"),
    ("Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]", "must be closed"),
    ("Polygon", "[[[0,0],[1,0],[0,0]]]", "at least 4 positions"),
    ("Polygon", "[[0,0],[1,0],[1,1],[0,0]]", "needs a list of at least 4 positions"),
    ("Polygon", "[]", "non-empty list of linear rings"),
    ("MultiPolygon", "[[[0,0],[1,0],[1,1],[0,0]]]", "at least 4 positions"),
    ("Polygon", "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]", "not valid (Self-intersection"),
    ("MultiPolygon", "[[[[0,0],[2,0],[2,2],[0,0]]],[[[1,0],[3,0],[3,2],[1,0]]]]", "not valid"),
    ("LineString", "[[23.79,44.31],[23.79,44.31]]", "not valid"),
    ("MultiPoint", "[]", "has no positions"),
    ("MultiPolygon", "[]", "has no positions"),
])
def test_bad_coordinates(geometry: str, coordinates: Any, detail: str) -> None:
    assert detail in bad("intersects", geometry, coordinates)


def test_too_many_positions() -> None:
    many = [[20 + i * 1e-4, 45.0] for i in range(MAX_QUERY_POSITIONS + 1)]
    assert "at most" in bad("intersects", "LineString", many)


@pytest.mark.parametrize("geoproperty", ["", "two words", "tab\there", 5, ["location"]])
def test_bad_geoproperty(geoproperty: Any) -> None:
    assert "not an attribute name" in bad("within", "Polygon", str(TIMISOARA), geoproperty)


def test_the_body_form() -> None:
    body = {"georel": "within", "geometry": "Polygon", "coordinates": TIMISOARA,
            "geoproperty": "location"}
    q = geo_query_from_json(body)
    assert q is not None and q.shape.equals(Polygon(TIMISOARA[0]))
    as_string = geo_query_from_json(body | {"coordinates": str(TIMISOARA)})
    assert as_string == q
    assert geo_query_from_json(None) is None


@pytest.mark.parametrize("body", [
    {}, [], "near", {"geoproperty": "location"},
    {"georel": "within", "geometry": "Polygon"},
    {"georel": 5, "geometry": "Point", "coordinates": [1, 2]},
    {"georel": "near;maxDistance==5", "geometry": ["Point"], "coordinates": [1, 2]},
    {"georel": "near;maxDistance==5", "geometry": "Point", "coordinates": {"lon": 1}},
])
def test_bad_body_form(body: Any) -> None:
    with pytest.raises(BadRequestData):
        geo_query_from_json(body)


_GEOREL = st.sampled_from(["near;maxDistance==100", "near;minDistance==5", "within", "equals",
                           "contains", "overlaps", "disjoint", "intersects"])
_GEOMETRY = st.sampled_from(["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                             "MultiPolygon"])
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=5)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=30) | _GEOREL, st.text(max_size=12) | _GEOMETRY,
       st.text(max_size=40) | _JSON.map(str), st.none() | st.text(max_size=10))
def test_random_strings_are_a_query_or_a_bad_request(georel: str, geometry: str,
                                                     coordinates: str, prop: str | None) -> None:
    with contextlib.suppress(BadRequestData):
        assert isinstance(parse_geo_query(georel, geometry, coordinates, prop), GeoQuery)


@settings(max_examples=400, deadline=None)
@given(_JSON, _GEOREL, _GEOMETRY)
def test_random_bodies_are_a_query_or_a_bad_request(coordinates: Any, georel: str,
                                                    geometry: str) -> None:
    for body in ({"georel": georel, "geometry": geometry, "coordinates": coordinates},
                 coordinates):
        with contextlib.suppress(BadRequestData):
            geo_query_from_json(body)
