"""The spatial-index prefilter box: it must never leave out a true match, and should be tight."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.query.geo import (
    BBox,
    bbox_prefilter,
    geo_matches,
    geometry_bbox,
    parse_geo_query,
)
from broker.query.geo_parse import GeoQuery

R = 6_371_008.8
MIHAI_VITEAZUL = (23.7967, 44.3190)  # Piața Mihai Viteazul, Craiova
CENTRE = [[21.21, 45.745], [21.24, 45.745], [21.24, 45.765], [21.21, 45.765], [21.21, 45.745]]


def query(georel: str, geometry: str, coordinates: Any) -> GeoQuery:
    q = parse_geo_query(georel, geometry, str(coordinates))
    assert q is not None
    return q


def meets(a: BBox, b: BBox) -> bool:
    """Whether two boxes intersect, borders included (as the SQL prefilter compares)."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def test_no_box_when_matches_can_be_anywhere() -> None:
    assert bbox_prefilter(query("disjoint", "Polygon", [CENTRE])) is None
    assert bbox_prefilter(query("near;minDistance==100", "Point", list(MIHAI_VITEAZUL))) is None


@pytest.mark.parametrize("georel", ["within", "contains", "intersects", "equals", "overlaps"])
def test_the_query_geometry_box_for_the_topological_relations(georel: str) -> None:
    assert bbox_prefilter(query(georel, "Polygon", [CENTRE])) == (21.21, 45.745, 21.24, 45.765)


def test_near_a_point_grows_by_the_distance() -> None:
    box = bbox_prefilter(query("near;maxDistance==1000", "Point", list(MIHAI_VITEAZUL)))
    assert box is not None
    lon, lat = MIHAI_VITEAZUL
    grow_lat = math.degrees(1001 / R)  # the distance plus one metre of slack
    assert box[1] == pytest.approx(lat - grow_lat) and box[3] == pytest.approx(lat + grow_lat)
    # Longitude degrees are shorter by cos(latitude): ~1.4 times wider at 44.3 N.
    grow_lon = (box[2] - box[0]) / 2
    assert box[0] + grow_lon == pytest.approx(lon)
    assert grow_lon == pytest.approx(grow_lat / math.cos(math.radians(lat)), rel=1e-3)
    assert grow_lon > grow_lat


def test_near_a_polygon_grows_its_box() -> None:
    box = bbox_prefilter(query("near;maxDistance==500", "Polygon", [CENTRE]))
    assert box is not None
    assert box[0] < 21.21 and box[1] < 45.745 and box[2] > 21.24 and box[3] > 45.765
    assert box[3] - 45.765 == pytest.approx(math.degrees(501 / R))


def test_near_a_pole_takes_every_longitude_and_stops_at_the_pole() -> None:
    box = bbox_prefilter(query("near;maxDistance==5000", "Point", [15.0, 89.99]))
    assert box is not None and box[0] == -180 and box[2] == 180 and box[3] == 90
    assert box[1] == pytest.approx(89.99 - math.degrees(5001 / R))


def test_across_the_antimeridian_takes_every_longitude() -> None:
    box = bbox_prefilter(query("near;maxDistance==1000", "Point", [179.999, -16.5]))  # Fiji
    assert box is not None and (box[0], box[2]) == (-180, 180)
    match = {"type": "Point", "coordinates": [-179.9995, -16.5]}
    assert geo_matches(query("near;maxDistance==1000", "Point", [179.999, -16.5]), match)


def test_a_distance_beyond_a_quarter_of_the_earth_takes_every_longitude() -> None:
    box = bbox_prefilter(query("near;maxDistance==15000000", "Point", list(MIHAI_VITEAZUL)))
    assert box == (-180, -90, 180, 90)


@pytest.mark.parametrize(("value", "box"), [
    ({"type": "Point", "coordinates": [23.7967, 44.319]}, (23.7967, 44.319, 23.7967, 44.319)),
    ({"type": "Point", "coordinates": [23.7967, 44.319, 95]}, (23.7967, 44.319, 23.7967, 44.319)),
    ({"type": "Polygon", "coordinates": [CENTRE]}, (21.21, 45.745, 21.24, 45.765)),
    ({"type": "MultiPolygon", "coordinates": [[CENTRE], [[[23.79, 44.31], [23.8, 44.31],
                                                          [23.8, 44.32], [23.79, 44.31]]]]},
     (21.21, 44.31, 23.8, 45.765)),
    ({"type": "GeometryCollection", "geometries": [
        {"type": "Point", "coordinates": [23.7967, 44.319]},
        {"type": "LineString", "coordinates": [[21.2257, 45.7537], [21.23, 45.76]]}]},
     (21.2257, 44.319, 23.7967, 45.76)),
])
def test_geometry_bbox(value: dict[str, Any], box: BBox) -> None:
    assert geometry_bbox(value) == box


@pytest.mark.parametrize("value", [
    None, 5, "x", {}, {"type": "Point"}, {"type": "Point", "coordinates": [True, False]},
    {"type": "Point", "coordinates": ["1", "2"]}, {"type": "Point", "coordinates": [10**400, 1]},
    {"type": "MultiPoint", "coordinates": []}, {"type": "GeometryCollection", "geometries": 5},
    {"type": "LineString", "coordinates": [[[[[[[[[[[]]]]]]]]]]]},
])
def test_geometry_bbox_of_what_has_no_positions(value: Any) -> None:
    assert geometry_bbox(value) is None


def test_geometry_bbox_of_a_very_deep_value_does_not_overflow() -> None:
    deep: Any = [23.7967, 44.319]
    for _ in range(5000):
        deep = [deep]
    assert geometry_bbox({"type": "Polygon", "coordinates": deep}) == (
        23.7967, 44.319, 23.7967, 44.319)


# -- the prefilter never leaves out a match --------------------------------------------------------

_OFFSET = st.floats(-0.1, 0.1)  # degrees: ~11 km around Craiova
_DISTANCE = st.floats(0, 20_000)  # metres


def _near_craiova(dx: float, dy: float) -> list[float]:
    return [MIHAI_VITEAZUL[0] + dx, MIHAI_VITEAZUL[1] + dy]


def _entity(kind: str, a: list[float], b: list[float]) -> dict[str, Any]:
    """A Point at a, a LineString a-b, or a Polygon: the box with corners a and b."""
    if kind == "Point" or a == b:
        return {"type": "Point", "coordinates": a}
    if kind == "LineString":
        return {"type": "LineString", "coordinates": [a, b]}
    ring = [a, [b[0], a[1]], b, [a[0], b[1]], a]
    return {"type": "Polygon", "coordinates": [ring]}


@settings(max_examples=500, deadline=None)
@given(_OFFSET, _OFFSET, _DISTANCE, _OFFSET, _OFFSET)
def test_near_points_around_craiova(dx: float, dy: float, distance: float, qx: float,
                                   qy: float) -> None:
    q = query(f"near;maxDistance=={distance!r}", "Point", _near_craiova(qx, qy))
    target = {"type": "Point", "coordinates": _near_craiova(dx, dy)}
    box = bbox_prefilter(q)
    assert box is not None
    if geo_matches(q, target):
        entity_box = geometry_bbox(target)
        assert entity_box is not None and meets(entity_box, box)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["Point", "LineString", "Polygon"]), _OFFSET, _OFFSET, _OFFSET, _OFFSET,
       _DISTANCE, st.sampled_from(["Point", "LineString"]))
def test_near_any_geometry_around_craiova(kind: str, ax: float, ay: float, bx: float, by: float,
                                          distance: float, query_kind: str) -> None:
    centre = [[23.7967, 44.319]] if query_kind == "Point" else [[23.79, 44.31], [23.80, 44.33]]
    q = query(f"near;maxDistance=={distance!r}", query_kind,
              centre[0] if query_kind == "Point" else centre)
    target = _entity(kind, _near_craiova(ax, ay), _near_craiova(bx, by))
    box = bbox_prefilter(q)
    assert box is not None
    if geo_matches(q, target):
        entity_box = geometry_bbox(target)
        assert entity_box is not None and meets(entity_box, box)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["within", "contains", "intersects", "equals", "overlaps"]),
       st.sampled_from(["Point", "LineString", "Polygon"]), _OFFSET, _OFFSET, _OFFSET, _OFFSET)
def test_topological_relations_around_craiova(georel: str, kind: str, ax: float, ay: float,
                                              bx: float, by: float) -> None:
    area = [[[23.75, 44.28], [23.84, 44.28], [23.84, 44.36], [23.75, 44.36], [23.75, 44.28]]]
    q = query(georel, "Polygon", area)
    target = _entity(kind, _near_craiova(ax, ay), _near_craiova(bx, by))
    box = bbox_prefilter(q)
    assert box is not None
    if geo_matches(q, target):
        entity_box = geometry_bbox(target)
        assert entity_box is not None and meets(entity_box, box)


@settings(max_examples=300, deadline=None)
@given(st.floats(-180, 180), st.floats(-90, 90), st.floats(-1, 1), st.floats(-1, 1),
       st.floats(0, 200_000))
def test_near_anywhere_on_earth(lon: float, lat: float, dx: float, dy: float,
                                distance: float) -> None:
    # Poles and the antimeridian included: the target is wrapped back into range.
    target_lon = (lon + dx + 180) % 360 - 180
    target_lat = max(-90.0, min(90.0, lat + dy))
    q = query(f"near;maxDistance=={distance!r}", "Point", [lon, lat])
    target = {"type": "Point", "coordinates": [target_lon, target_lat]}
    box = bbox_prefilter(q)
    assert box is not None
    if geo_matches(q, target):
        entity_box = geometry_bbox(target)
        assert entity_box is not None and meets(entity_box, box)


def test_the_box_around_craiova_is_tight() -> None:
    box = bbox_prefilter(query("near;maxDistance==1000", "Point", list(MIHAI_VITEAZUL)))
    assert box is not None and box[2] - box[0] < 0.03 and box[3] - box[1] < 0.02
