"""Exact geo-query evaluation: DE-9IM relations as PostGIS computes them, distances on the sphere.

Expected distances come from formulas independent of the code under test: the spherical law of
cosines, Vincenty's formula on the sphere, the cross-track formula, and a local flat projection.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, MultiPoint, Point, Polygon

from broker.query.geo import (
    GeoQuery,
    distance_m,
    geo_matches,
    haversine_m,
    parse_geo_query,
)
from broker.query.geo_eval import EARTH_RADIUS_M

R = 6_371_008.8
MIHAI_VITEAZUL = (23.7967, 44.3190)  # Piața Mihai Viteazul, Craiova
ROMANESCU = (23.7925, 44.2985)  # Parcul Nicolae Romanescu, Craiova, ~2.3 km south
VICTORIEI = (21.2257, 45.7537)  # Piața Victoriei, Timișoara
# A square around Timișoara's centre, with a hole around Piața Victoriei.
CENTRE = [[21.21, 45.745], [21.24, 45.745], [21.24, 45.765], [21.21, 45.765], [21.21, 45.745]]
HOLE = [[21.224, 45.752], [21.227, 45.752], [21.227, 45.755], [21.224, 45.755], [21.224, 45.752]]
# Calea Unirii, roughly, from Piața Mihai Viteazul southwards.
CALEA_UNIRII = [[23.7967, 44.3190], [23.7951, 44.3164], [23.7940, 44.3120]]


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def query(georel: str, geometry: str, coordinates: Any) -> GeoQuery:
    q = parse_geo_query(georel, geometry, coordinates if isinstance(coordinates, str)
                        else str(coordinates))
    assert q is not None
    return q


def law_of_cosines(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    return R * math.acos(math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl))


def vincenty_sphere(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.hypot(math.cos(p2) * math.sin(dl),
                   math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl))
    x = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return R * math.atan2(y, x)


# -- distances -----------------------------------------------------------------------------------

def test_craiova_to_timisoara() -> None:
    d = haversine_m(*MIHAI_VITEAZUL, *VICTORIEI)
    assert d == pytest.approx(law_of_cosines(*MIHAI_VITEAZUL, *VICTORIEI), rel=1e-9)
    assert d == pytest.approx(vincenty_sphere(*MIHAI_VITEAZUL, *VICTORIEI), rel=1e-12)
    assert 255_000 < d < 260_000  # ~257.4 km as the crow flies (~320 km by road)
    assert distance_m(Point(*MIHAI_VITEAZUL), Point(*VICTORIEI)) == d
    # The general path (any geometry) agrees with the point-to-point one.
    two = MultiPoint([VICTORIEI, (21.0, 46.0)])
    assert distance_m(Point(*MIHAI_VITEAZUL), two) == pytest.approx(d, abs=1e-6)
    assert distance_m(two, Point(*MIHAI_VITEAZUL)) == pytest.approx(d, abs=1e-6)


def test_short_distances_keep_their_precision() -> None:
    one_minute_north = (MIHAI_VITEAZUL[0], MIHAI_VITEAZUL[1] + 1 / 60)
    assert haversine_m(*MIHAI_VITEAZUL, *one_minute_north) == pytest.approx(
        R * math.pi / 10_800, abs=1e-6)  # one arc-minute of latitude: 1853.25 m
    ten_cm = (MIHAI_VITEAZUL[0], MIHAI_VITEAZUL[1] + 0.1 / R * 180 / math.pi)
    assert distance_m(MultiPoint([MIHAI_VITEAZUL, (0, 0)]), Point(*ten_cm)) == pytest.approx(
        0.1, abs=1e-6)


def test_distance_to_a_meridian_segment_is_the_cross_track_distance() -> None:
    segment = LineString([(23.7967, 44.30), (23.7967, 44.33)])
    lon, lat = 23.7990, 44.3150
    cross_track = R * math.asin(math.cos(math.radians(lat))
                                * math.sin(math.radians(lon - 23.7967)))
    assert distance_m(Point(lon, lat), segment) == pytest.approx(cross_track, abs=0.01)
    # Beyond the segment's end, the nearest point is the end.
    assert distance_m(Point(lon, 44.34), segment) == pytest.approx(
        haversine_m(lon, 44.34, 23.7967, 44.33), abs=0.01)


def test_edges_are_straight_in_longitude_latitude() -> None:
    # RFC 7946: an edge along a parallel stays on the parallel; a great circle through the same
    # ends would bulge ~30 m northwards and make this distance ~380 m.
    street = LineString([(21.0, 45.75), (21.5, 45.75)])
    expected = R * math.radians(45.7537 - 45.75)  # straight north of the edge: ~411 m
    assert distance_m(Point(*VICTORIEI), street) == pytest.approx(expected, abs=0.05)


def test_distance_to_a_street() -> None:
    lon, lat = 23.7962, 44.3168  # some 60 m east of Calea Unirii
    # Independent: flat projection around the point (good to 1e-4 at this scale).
    kx, ky = R * math.radians(1) * math.cos(math.radians(lat)), R * math.radians(1)
    (ax, ay), (bx, by) = [((x - lon) * kx, (y - lat) * ky) for x, y in CALEA_UNIRII[:2]]
    t = max(0.0, min(1.0, -(ax * (bx - ax) + ay * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2)))
    flat = math.hypot(ax + t * (bx - ax), ay + t * (by - ay))
    d = distance_m(Point(lon, lat), LineString(CALEA_UNIRII))
    assert 60 < d < 65
    assert d == pytest.approx(flat, rel=1e-3)
    street = {"type": "LineString", "coordinates": CALEA_UNIRII}
    assert geo_matches(query("near;maxDistance==65", "Point", [lon, lat]), street)
    assert not geo_matches(query("near;maxDistance==60", "Point", [lon, lat]), street)
    assert geo_matches(query("near;minDistance==60", "Point", [lon, lat]), street)


def test_distance_to_a_polygon_is_zero_inside_and_to_the_border_outside() -> None:
    square = Polygon(CENTRE, [HOLE])
    assert distance_m(Point(21.215, 45.75), square) == 0.0
    assert distance_m(Point(21.21, 45.75), square) == 0.0  # on the border
    # In the hole: the distance to the hole's nearest edge (west edge, lon 21.224).
    inside_hole = Point(21.2245, 45.7535)
    expected = R * math.asin(math.cos(math.radians(45.7535)) * math.sin(math.radians(0.0005)))
    assert distance_m(inside_hole, square) == pytest.approx(expected, abs=0.01)
    # Polygon to polygon: two squares 0.01 degrees of latitude apart.
    below = Polygon([(21.21, 45.73), (21.24, 45.73), (21.24, 45.735), (21.21, 45.735)])
    assert distance_m(below, square) == pytest.approx(R * math.radians(0.01), abs=0.01)


def test_altitude_is_ignored() -> None:
    assert distance_m(Point(23.7967, 44.3190, 90.0), Point(23.7967, 44.3190, 0.0)) == 0.0
    assert geo_matches(query("near;maxDistance==0", "Point", [23.7967, 44.3190]),
                       {"type": "Point", "coordinates": [23.7967, 44.3190, 95.5]})


def test_distance_across_the_antimeridian() -> None:
    assert distance_m(Point(179.9999, 0), Point(-179.9999, 0)) == pytest.approx(
        R * math.radians(0.0002), abs=1e-6)
    assert distance_m(LineString([(179.9999, -1), (179.9999, 1)]), Point(-179.9999, 0)) == \
        pytest.approx(R * math.radians(0.0002), abs=1e-3)


def test_an_empty_geometry_has_no_distance() -> None:
    with pytest.raises(ValueError):
        distance_m(MultiPoint(), Point(0, 0))


# -- near -----------------------------------------------------------------------------------------

def test_near_max_distance_is_inclusive() -> None:
    d = haversine_m(*MIHAI_VITEAZUL, *ROMANESCU)
    assert 2_200 < d < 2_400
    assert geo_matches(query(f"near;maxDistance=={d!r}", "Point", list(MIHAI_VITEAZUL)),
                       point(*ROMANESCU))
    assert not geo_matches(query(f"near;maxDistance=={d - 0.01!r}", "Point",
                                 list(MIHAI_VITEAZUL)), point(*ROMANESCU))
    assert geo_matches(query(f"near;minDistance=={d!r}", "Point", list(MIHAI_VITEAZUL)),
                       point(*ROMANESCU))
    assert not geo_matches(query(f"near;minDistance=={d + 0.01!r}", "Point",
                                 list(MIHAI_VITEAZUL)), point(*ROMANESCU))


def test_max_distance_zero_means_the_same_point_or_touching() -> None:
    zero = query("near;maxDistance==0", "Point", list(MIHAI_VITEAZUL))
    assert geo_matches(zero, point(*MIHAI_VITEAZUL))
    assert not geo_matches(zero, point(MIHAI_VITEAZUL[0], MIHAI_VITEAZUL[1] + 1e-7))  # 1 cm
    assert geo_matches(zero, {"type": "LineString", "coordinates": CALEA_UNIRII})  # its end
    around = polygon([[23.79, 44.31], [23.80, 44.31], [23.80, 44.32], [23.79, 44.32],
                      [23.79, 44.31]])
    assert geo_matches(zero, around)


def test_near_between_min_and_max() -> None:
    ring = query("near;minDistance==1000;maxDistance==3000", "Point", list(MIHAI_VITEAZUL))
    assert geo_matches(ring, point(*ROMANESCU))
    assert not geo_matches(ring, point(*MIHAI_VITEAZUL))
    assert not geo_matches(ring, point(*VICTORIEI))


def test_near_a_polygon_query_geometry() -> None:
    # The spec's examples use a Point; any geometry works, as ST_DWithin does in PostGIS.
    west = R * math.asin(math.cos(math.radians(45.75)) * math.sin(math.radians(0.01)))
    assert 770 < west < 780  # (21.20, 45.75) to the square's west edge, on the meridian 21.21
    assert distance_m(Point(21.2, 45.75), Polygon(CENTRE)) == pytest.approx(west, abs=0.01)
    q = query("near;maxDistance==800", "Polygon", [CENTRE])
    assert geo_matches(q, point(21.215, 45.75))  # inside
    assert geo_matches(q, point(21.2, 45.75))
    assert not geo_matches(query("near;maxDistance==770", "Polygon", [CENTRE]),
                           point(21.2, 45.75))
    assert not geo_matches(q, point(21.2, 45.70))  # ~5 km south


def test_near_with_multi_geometries() -> None:
    q = query("near;maxDistance==100", "Point", list(VICTORIEI))
    both = {"type": "MultiPoint", "coordinates": [list(MIHAI_VITEAZUL), [21.2258, 45.7538]]}
    assert geo_matches(q, both)
    squares = {"type": "MultiPolygon", "coordinates": [
        [[[23.79, 44.31], [23.80, 44.31], [23.80, 44.32], [23.79, 44.31]]],
        [[[21.22, 45.75], [21.23, 45.75], [21.23, 45.76], [21.22, 45.76], [21.22, 45.75]]],
    ]}
    assert geo_matches(q, squares)
    assert geo_matches(query("within", "Point", list(VICTORIEI)), point(*VICTORIEI))


# -- topological relations (DE-9IM, as PostGIS ST_*) ---------------------------------------------

@pytest.mark.parametrize(("where", "within", "intersects", "disjoint"), [
    ((21.215, 45.750), True, True, False),  # inside
    (VICTORIEI, False, False, True),  # in the hole
    ((21.210, 45.750), False, True, False),  # on the outer border
    ((21.210, 45.745), False, True, False),  # on a corner
    ((21.224, 45.753), False, True, False),  # on the hole's border
    (MIHAI_VITEAZUL, False, False, True),  # another city
])
def test_points_and_a_polygon_with_a_hole(where: tuple[float, float], within: bool,
                                          intersects: bool, disjoint: bool) -> None:
    coordinates = [CENTRE, HOLE]
    assert geo_matches(query("within", "Polygon", coordinates), point(*where)) is within
    assert geo_matches(query("intersects", "Polygon", coordinates), point(*where)) is intersects
    assert geo_matches(query("disjoint", "Polygon", coordinates), point(*where)) is disjoint
    assert not geo_matches(query("overlaps", "Polygon", coordinates), point(*where))


def test_contains_excludes_the_border_like_st_contains() -> None:
    entity = polygon(CENTRE, HOLE)
    assert geo_matches(query("contains", "Point", [21.215, 45.75]), entity)
    assert not geo_matches(query("contains", "Point", [21.21, 45.75]), entity)  # border
    assert not geo_matches(query("contains", "Point", list(VICTORIEI)), entity)  # hole
    street = [[21.215, 45.75], [21.22, 45.75]]
    assert geo_matches(query("contains", "LineString", street), entity)


def test_lines_and_polygons_on_the_border() -> None:
    along_the_west_edge = {"type": "LineString", "coordinates": [[21.21, 45.75], [21.21, 45.76]]}
    assert not geo_matches(query("within", "Polygon", [CENTRE]), along_the_west_edge)
    assert geo_matches(query("intersects", "Polygon", [CENTRE]), along_the_west_edge)
    # A polygon inside another, sharing an edge, is within it (its interior is inside).
    west_half = polygon([[21.21, 45.745], [21.225, 45.745], [21.225, 45.765], [21.21, 45.765],
                         [21.21, 45.745]])
    assert geo_matches(query("within", "Polygon", [CENTRE]), west_half)
    assert not geo_matches(query("overlaps", "Polygon", [CENTRE]), west_half)
    shifted = polygon([[21.20, 45.745], [21.225, 45.745], [21.225, 45.765], [21.20, 45.765],
                       [21.20, 45.745]])
    assert geo_matches(query("overlaps", "Polygon", [CENTRE]), shifted)
    assert not geo_matches(query("within", "Polygon", [CENTRE]), shifted)


def test_equals_is_topological() -> None:
    assert geo_matches(query("equals", "Point", list(VICTORIEI)), point(*VICTORIEI))
    assert geo_matches(query("equals", "Point", list(VICTORIEI)),
                       {"type": "MultiPoint", "coordinates": [list(VICTORIEI)]})
    rotated = [*CENTRE[1:], CENTRE[1]]  # the same ring from another vertex
    assert geo_matches(query("equals", "Polygon", [CENTRE]), polygon(rotated))
    assert not geo_matches(query("equals", "Polygon", [CENTRE]), polygon(CENTRE, HOLE))


def test_a_multipolygon_query() -> None:
    craiova = [[[23.79, 44.31], [23.80, 44.31], [23.80, 44.32], [23.79, 44.32], [23.79, 44.31]]]
    both = query("within", "MultiPolygon", [craiova, [CENTRE, HOLE]])
    assert geo_matches(both, point(*MIHAI_VITEAZUL))
    assert geo_matches(both, point(21.215, 45.75))
    assert not geo_matches(both, point(*VICTORIEI))


def test_an_entity_geometry_collection() -> None:
    value = {"type": "GeometryCollection", "geometries": [point(*MIHAI_VITEAZUL),
                                                          point(21.215, 45.75)]}
    assert geo_matches(query("intersects", "Polygon", [CENTRE]), value)
    assert not geo_matches(query("within", "Polygon", [CENTRE]), value)
    assert geo_matches(query("near;maxDistance==1", "Point", list(MIHAI_VITEAZUL)), value)


_RELATIONS = ["near;maxDistance==100", "near;minDistance==100", "within", "contains",
              "intersects", "equals", "disjoint", "overlaps"]


@pytest.mark.parametrize("value", [
    None, "POINT(1 2)", 5, [], {}, {"type": "Point"}, {"type": "Point", "coordinates": "a"},
    {"type": "Point", "coordinates": []}, {"type": "Circle", "coordinates": [1, 2]},
    {"type": 5}, {"type": "Polygon", "coordinates": [[1, 2]]},
    {"type": "MultiPoint", "coordinates": []},
    {"type": "GeometryCollection", "geometries": []},
])
def test_what_is_not_a_geometry_matches_nothing(value: Any) -> None:
    for georel in _RELATIONS:
        q = query(georel, "Polygon", [CENTRE])
        assert geo_matches(q, value) in (False, georel == "disjoint")


def test_an_invalid_stored_polygon_gives_an_answer() -> None:
    bowtie = polygon([[21.21, 45.745], [21.24, 45.765], [21.24, 45.745], [21.21, 45.765],
                      [21.21, 45.745]])
    for georel in _RELATIONS:
        assert isinstance(geo_matches(query(georel, "Polygon", [CENTRE]), bowtie), bool)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
                     lambda inner: st.lists(inner, max_size=5)
                     | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=30)
_GEOMETRY_TYPES = st.sampled_from(["Point", "MultiPoint", "LineString", "MultiLineString",
                                   "Polygon", "MultiPolygon", "GeometryCollection"])


@settings(max_examples=300, deadline=None)
@given(_GEOMETRY_TYPES, _JSON, st.sampled_from(_RELATIONS))
def test_any_stored_value_gives_a_bool(kind: str, coordinates: Any, georel: str) -> None:
    q = query(georel, "Point", list(MIHAI_VITEAZUL))
    value = {"type": kind, "coordinates": coordinates, "geometries": coordinates}
    assert isinstance(geo_matches(q, value), bool)


def test_the_sphere_is_the_wgs84_mean_radius() -> None:
    assert EARTH_RADIUS_M == R
