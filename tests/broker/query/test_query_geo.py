"""Geo-queries, pure: parsing, exact relations, distances on the sphere, the SQL prefilter box."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import BadRequestData
from broker.query.geo import (
    geo_matches,
    haversine_m,
    parse_geo_query,
    prefilter_box,
)

MIHAI_VITEAZUL = (23.7967, 44.3190)  # Piața Mihai Viteazul, Craiova
TIMISOARA_VICTORIEI = (21.2257, 45.7537)  # Piața Victoriei, Timișoara
# A square around Timișoara's centre with a hole around Piața Victoriei.
CENTRE = [[21.21, 45.745], [21.24, 45.745], [21.24, 45.765], [21.21, 45.765], [21.21, 45.745]]
HOLE = [[21.224, 45.752], [21.227, 45.752], [21.227, 45.755], [21.224, 45.755], [21.224, 45.752]]


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def test_haversine_against_law_of_cosines() -> None:
    (lon1, lat1), (lon2, lat2) = MIHAI_VITEAZUL, TIMISOARA_VICTORIEI
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    cosines = math.acos(math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl))
    assert haversine_m(lon1, lat1, lon2, lat2) == pytest.approx(cosines * 6_371_008.8, rel=1e-9)
    assert 250_000 < haversine_m(lon1, lat1, lon2, lat2) < 265_000


def test_near() -> None:
    q = parse_geo_query("near;maxDistance==300", "Point", "[23.7967,44.3190]")
    assert q is not None
    assert geo_matches(q, point(23.7951, 44.3190))  # ~128 m west
    assert not geo_matches(q, point(23.7925, 44.2985))  # Parcul Romanescu, ~2.3 km
    zero = parse_geo_query("near;maxDistance==0", "Point", "[23.7967,44.3190]")
    assert zero is not None and geo_matches(zero, point(*MIHAI_VITEAZUL))
    far = parse_geo_query("near;minDistance==1000", "Point", "[23.7967,44.3190]")
    assert far is not None and geo_matches(far, point(23.7925, 44.2985))
    assert not geo_matches(far, point(*MIHAI_VITEAZUL))


def test_near_a_street() -> None:
    calea_unirii = {"type": "LineString", "coordinates": [[23.7967, 44.3190], [23.7951, 44.3164],
                                                          [23.7940, 44.3120]]}
    q = parse_geo_query("near;maxDistance==50", "Point", "[23.7955,44.3165]")
    assert q is not None and geo_matches(q, calea_unirii)


def test_polygon_relations_with_hole_and_border() -> None:
    coords = str([CENTRE, HOLE])
    within = parse_geo_query("within", "Polygon", coords)
    assert within is not None
    assert geo_matches(within, point(21.215, 45.750))
    assert not geo_matches(within, point(*TIMISOARA_VICTORIEI))  # in the hole
    assert not geo_matches(within, point(21.21, 45.75))  # on the border: not within (DE-9IM)
    intersects = parse_geo_query("intersects", "Polygon", coords)
    assert intersects is not None and geo_matches(intersects, point(21.21, 45.75))
    disjoint = parse_geo_query("disjoint", "Polygon", coords)
    assert disjoint is not None and geo_matches(disjoint, point(*MIHAI_VITEAZUL))
    contains = parse_geo_query("contains", "Point", "[21.215,45.75]")
    assert contains is not None
    assert geo_matches(contains, {"type": "Polygon", "coordinates": [CENTRE]})
    equals = parse_geo_query("equals", "Point", "[21.215,45.75]")
    assert equals is not None and geo_matches(equals, point(21.215, 45.75))


@pytest.mark.parametrize(("georel", "geometry", "coordinates"), [
    ("near", "Point", "[1,2]"),
    ("near;maxDistance==-1", "Point", "[1,2]"),
    ("near;maxDistance==x", "Point", "[1,2]"),
    ("within;maxDistance==5", "Polygon", "[[[0,0],[1,0],[1,1],[0,0]]]"),
    ("around", "Point", "[1,2]"),
    ("within", "Polygon", "[[[0,0],[1,0],[1,1]]]"),
    ("within", "Circle", "[1,2]"),
    ("near;maxDistance==5", "Point", "[200,2]"),
    ("near;maxDistance==5", "Point", "not json"),
    ("within", None, "[1,2]"),
])
def test_bad_geo_queries(georel: str, geometry: str | None, coordinates: str) -> None:
    with pytest.raises(BadRequestData):
        parse_geo_query(georel, geometry, coordinates)


def test_no_geo_query() -> None:
    assert parse_geo_query(None, None, None) is None
    disjoint = parse_geo_query("disjoint", "Point", "[1,2]")
    assert disjoint is not None and prefilter_box(disjoint) is None


@settings(max_examples=300, deadline=None)
@given(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05), st.floats(0, 5000))
def test_prefilter_never_cuts_a_match(dx: float, dy: float, distance: float) -> None:
    q = parse_geo_query(f"near;maxDistance=={distance}", "Point", "[23.7967,44.3190]")
    assert q is not None
    target = point(23.7967 + dx, 44.3190 + dy)
    if geo_matches(q, target):
        box = prefilter_box(q)
        assert box is not None
        assert box[0] <= target["coordinates"][0] <= box[1]
        assert box[2] <= target["coordinates"][1] <= box[3]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20), st.text(max_size=12), st.text(max_size=30))
def test_random_input_is_a_bad_request_or_a_query(georel: str, geometry: str,
                                                  coordinates: str) -> None:
    with contextlib.suppress(BadRequestData):
        parse_geo_query(georel, geometry, coordinates)
