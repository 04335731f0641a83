"""Parsing payloads into the internal form (clauses 4.5, 4.6, 5.6.x), with a fake term map."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.entities.clock import normalize_datetime, now_iso
from broker.entities.parse import (
    MAX_DEPTH,
    Fragment,
    parse_attribute,
    parse_entity,
    parse_fragment,
    require_uri,
)
from broker.entities.terms import Terms
from broker.errors import BadRequestData, NgsiError

CORE = "https://uri.etsi.org/ngsi-ld/"
D = CORE + "default-context/"
T0 = "2026-11-23T10:00:00.000Z"
ID = "urn:ngsi-ld:Streetlight:1"
POINT = {"type": "Point", "coordinates": [23.8, 44.3]}


class FakeTerms:
    """A dict of user terms over the core vocabulary; unknown terms go to the default context."""

    CORE_TERMS = ("location", "observationSpace", "operationSpace")

    def __init__(self, user: dict[str, str] | None = None) -> None:
        self.user = {t: CORE + t for t in self.CORE_TERMS} | (user or {})

    def expand(self, term: str) -> str:
        return term if ":" in term else self.user.get(term, D + term)

    def compact(self, iri: str) -> str:
        back = {v: k for k, v in self.user.items()}
        if iri in back:
            return back[iri]
        return iri.removeprefix(D) if iri.startswith(D) else iri


TERMS: Terms = FakeTerms({"brightness": "https://example.org/brightness"})


def parse(**attrs: Any) -> dict[str, Any]:
    return parse_entity({"id": ID, "type": "Streetlight", **attrs}, TERMS, T0)


def only(name: str, raw: Any) -> list[dict[str, Any]]:
    instances: list[dict[str, Any]] = parse(**{name: raw})["attrs"][TERMS.expand(name)]
    return instances


# -- the entity ---------------------------------------------------------------------------------

def test_entity_members_and_stamps() -> None:
    e = parse_entity({"id": ID, "type": ["Streetlight", "Device", "Streetlight"],
                      "scope": "/Craiova/Centru", "createdAt": "1999-01-01T00:00:00Z",
                      "brightness": 3}, TERMS, T0)
    assert e["id"] == ID
    assert e["type"] == [D + "Streetlight", D + "Device"]
    assert e["scope"] == ["/Craiova/Centru"]
    assert e["createdAt"] == e["modifiedAt"] == T0
    assert e["attrs"] == {"https://example.org/brightness": [
        {"type": "Property", "value": 3, "createdAt": T0, "modifiedAt": T0}]}


# Clause 4.5: normalized input, one row per kind: (raw, expected internal instance sans stamps).
NORMALIZED = [
    ({"type": "Property", "value": 21.5, "unitCode": "CEL",
      "observedAt": "2026-11-23T12:00:00+02:00"},
     {"type": "Property", "value": 21.5, "unitCode": "CEL", "observedAt": T0}),
    ({"type": "Relationship", "object": "urn:ngsi-ld:Group:1", "objectType": "Group"},
     {"type": "Relationship", "object": "urn:ngsi-ld:Group:1", "objectType": [D + "Group"]}),
    ({"type": "Relationship", "object": ["urn:a:1", "urn:a:2"]},
     {"type": "Relationship", "object": ["urn:a:1", "urn:a:2"]}),
    ({"type": "GeoProperty", "value": POINT}, {"type": "GeoProperty", "value": POINT}),
    ({"type": "LanguageProperty", "languageMap": {"ro": "Lampă", "en": ["Lamp", "Light"]}},
     {"type": "LanguageProperty", "languageMap": {"ro": "Lampă", "en": ["Lamp", "Light"]}}),
    ({"type": "VocabProperty", "vocab": ["led", "location"]},
     {"type": "VocabProperty", "vocab": [D + "led", CORE + "location"]}),
    ({"type": "JsonProperty", "json": {"a": [1, None]}},
     {"type": "JsonProperty", "json": {"a": [1, None]}}),
    ({"type": "ListProperty", "valueList": [1, "a", None]},
     {"type": "ListProperty", "valueList": [1, "a", None]}),
    ({"type": "ListRelationship", "objectList": ["urn:a:1", {"object": "urn:a:2"}]},
     {"type": "ListRelationship", "objectList": ["urn:a:1", "urn:a:2"]}),
]

# Clause 4.5.x concise input: the same instances, type inferred.
CONCISE = [
    (7, {"type": "Property", "value": 7}),
    ("on", {"type": "Property", "value": "on"}),
    ({"value": {"a": 1}, "unitCode": "C"},
     {"type": "Property", "value": {"a": 1}, "unitCode": "C"}),
    ({"object": "urn:a:1"}, {"type": "Relationship", "object": "urn:a:1"}),
    ({"languageMap": {"ro": "x"}}, {"type": "LanguageProperty", "languageMap": {"ro": "x"}}),
    ({"vocab": "led"}, {"type": "VocabProperty", "vocab": D + "led"}),
    ({"json": [1]}, {"type": "JsonProperty", "json": [1]}),
    ({"valueList": []}, {"type": "ListProperty", "valueList": []}),
    ({"objectList": ["urn:a:1"]}, {"type": "ListRelationship", "objectList": ["urn:a:1"]}),
    (POINT, {"type": "GeoProperty", "value": POINT}),
    ({"value": POINT}, {"type": "GeoProperty", "value": POINT}),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALIZED + CONCISE)
def test_instance_kinds(raw: Any, expected: dict[str, Any]) -> None:
    assert only("a", raw) == [{**expected, "createdAt": T0, "modifiedAt": T0}]


def test_sub_attributes_expanded_and_stamped() -> None:
    [inst] = only("temp", {"value": 20, "accuracy": {"type": "Property", "value": 0.1},
                           "measuredBy": {"object": "urn:ngsi-ld:Sensor:1"},
                           "modifiedAt": "1999-01-01T00:00:00Z"})
    assert inst[D + "accuracy"] == {"type": "Property", "value": 0.1, "createdAt": T0,
                                    "modifiedAt": T0}
    assert inst[D + "measuredBy"]["type"] == "Relationship"
    assert inst["modifiedAt"] == T0


def test_multi_instance_by_dataset_id() -> None:
    insts = only("temp", [{"type": "Property", "value": 1},
                          {"value": 2, "datasetId": "urn:ngsi-ld:Dataset:b"}])
    assert [i["value"] for i in insts] == [1, 2]
    assert "datasetId" not in insts[0] and insts[1]["datasetId"] == "urn:ngsi-ld:Dataset:b"


def test_a_plain_list_is_one_property_value() -> None:
    assert only("tags", [1, 2])[0]["value"] == [1, 2]


def test_key_values() -> None:
    e = parse_entity({"id": ID, "type": "T", "brightness": {"value": 1}, "location": POINT},
                     TERMS, T0, key_values=True)
    assert e["attrs"]["https://example.org/brightness"][0]["value"] == {"value": 1}
    assert e["attrs"][CORE + "location"][0] == {"type": "GeoProperty", "value": POINT,
                                                "createdAt": T0, "modifiedAt": T0}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


BAD_ENTITIES = {
    "not an object": [ID],
    "missing id": {"type": "T"},
    "missing type": {"id": ID},
    "id not a URI": {"id": "lamp 1", "type": "T"},
    "id relative": {"id": "abc", "type": "T"},
    "id empty rest": {"id": "urn:", "type": "T"},
    "id a number": {"id": 5, "type": "T"},
    "type empty list": {"id": ID, "type": []},
    "type not a string": {"id": ID, "type": 5},
    "type with forbidden char": {"id": ID, "type": "Street light"},
    "scope not a path": {"id": ID, "type": "T", "scope": "Craiova"},
    "@context as attribute": {"id": ID, "type": "T", "a": {"@context": {"value": 1}}},
    "@type as sub-attribute": {"id": ID, "type": "T", "a": {"value": 1, "@type": "x"}},
    "id as sub-attribute": {"id": ID, "type": "T", "a": {"value": 1, "id": {"value": 2}}},
    "scope as sub-attribute": {"id": ID, "type": "T", "a": {"value": 1, "scope": {"value": 2}}},
    "@ name": {"id": ID, "type": "T", "@foo": 1},
    "name with space": {"id": ID, "type": "T", "a b": 1},
    "name with quote": {"id": ID, "type": "T", "a'b": 1},
    "name with =": {"id": ID, "type": "T", "a=b": 1},
    "name with (": {"id": ID, "type": "T", "a(b": 1},
    "name with control": {"id": ID, "type": "T", "a\x01": 1},
    "empty name": {"id": ID, "type": "T", "": 1},
    "null value": {"id": ID, "type": "T", "a": None},
    "Property null value": {"id": ID, "type": "T", "a": {"type": "Property", "value": None}},
    "Property without value": {"id": ID, "type": "T", "a": {"type": "Property"}},
    "no value member": {"id": ID, "type": "T", "a": {"unitCode": "C"}},
    "unknown type": {"id": ID, "type": "T", "a": {"type": "Banana", "value": 1}},
    "list type": {"id": ID, "type": "T", "a": {"type": ["Property"], "value": 1}},
    "wrong member": {"id": ID, "type": "T", "a": {"type": "Property", "object": "urn:a:1"}},
    "object not URI": {"id": ID, "type": "T", "a": {"type": "Relationship", "object": "x y"}},
    "object empty list": {"id": ID, "type": "T", "a": {"object": []}},
    "objectList not URIs": {"id": ID, "type": "T", "a": {"objectList": ["urn:a:1", 3]}},
    "objectList not list": {"id": ID, "type": "T", "a": {"objectList": "urn:a:1"}},
    "valueList not list": {"id": ID, "type": "T", "a": {"valueList": 1}},
    "languageMap not map": {"id": ID, "type": "T", "a": {"languageMap": "x"}},
    "languageMap number": {"id": ID, "type": "T", "a": {"languageMap": {"en": 1}}},
    "languageMap bad tag": {"id": ID, "type": "T", "a": {"languageMap": {"e n": "x"}}},
    "vocab number": {"id": ID, "type": "T", "a": {"vocab": 3}},
    "objectType on Property": {"id": ID, "type": "T", "a": {"value": 1, "objectType": "T"}},
    "bad datasetId": {"id": ID, "type": "T", "a": {"value": 1, "datasetId": "x"}},
    "duplicate datasetId": {"id": ID, "type": "T", "a": [
        {"value": 1, "datasetId": "urn:d:1"}, {"value": 2, "datasetId": "urn:d:1"}]},
    "two default instances": {"id": ID, "type": "T", "a": [{"value": 1}, {"value": 2}]},
    "sub-attribute datasetId": {"id": ID, "type": "T", "a": {
        "value": 1, "b": {"value": 2, "datasetId": "urn:d:1"}}},
    "bad observedAt": {"id": ID, "type": "T", "a": {"value": 1, "observedAt": "yesterday"}},
    "bad unitCode": {"id": ID, "type": "T", "a": {"value": 1, "unitCode": 5}},
    "bad sub-attribute": {"id": ID, "type": "T", "a": {"value": 1, "b": {"type": "Banana"}}},
    "nesting too deep": {"id": ID, "type": "T", "a": {"value": nested(MAX_DEPTH)}},
    "geo not geometry": {"id": ID, "type": "T", "a": {"type": "GeoProperty", "value": 1}},
    "geo unknown type": {"id": ID, "type": "T", "a": {"type": "GeoProperty", "value": {
        "type": "Circle", "coordinates": [1, 2]}}},
    "geo longitude": {"id": ID, "type": "T", "a": {"type": "Point", "coordinates": [181, 0]}},
    "geo latitude": {"id": ID, "type": "T", "a": {"type": "Point", "coordinates": [0, -91]}},
    "geo string coordinate": {"id": ID, "type": "T", "a": {"type": "Point",
                                                           "coordinates": ["1", 2]}},
    "geo bool coordinate": {"id": ID, "type": "T", "a": {"type": "Point",
                                                         "coordinates": [True, 2]}},
    "geo open ring": {"id": ID, "type": "T", "a": {"type": "Polygon", "coordinates": [
        [[0, 0], [1, 0], [1, 1], [0, 1]]]}},
    "geo short ring": {"id": ID, "type": "T", "a": {"type": "Polygon", "coordinates": [
        [[0, 0], [1, 0], [0, 0]]]}},
    "geo short line": {"id": ID, "type": "T", "a": {"type": "LineString",
                                                    "coordinates": [[0, 0]]}},
    "geo no coordinates": {"id": ID, "type": "T", "a": {"value": {"type": "Point"},
                                                        "type": "GeoProperty"}},
    "geo bad collection member": {"id": ID, "type": "T", "a": {
        "type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [0]}]}},
}


@pytest.mark.parametrize("why", sorted(BAD_ENTITIES))
def test_bad_entities_are_refused(why: str) -> None:
    with pytest.raises(BadRequestData):
        parse_entity(BAD_ENTITIES[why], TERMS, T0)


def test_errors_name_the_attribute_and_fault() -> None:
    with pytest.raises(BadRequestData, match=r"Attribute temp.*datasetId"):
        parse(temp={"value": 1, "datasetId": "nope"})
    with pytest.raises(BadRequestData, match="Banana"):
        parse(temp={"type": "Banana", "value": 1})


def test_key_values_refuses_null_and_bad_geometry() -> None:
    for value in (None, {"type": "Point", "coordinates": [500, 0]}):
        with pytest.raises(BadRequestData):
            parse_entity({"id": ID, "type": "T", "a": value}, TERMS, T0, key_values=True)


def test_depth_limit_is_exact() -> None:
    # The body is level 1, the attribute level 2, its value member level 3.
    parse(a={"value": nested(MAX_DEPTH - 3)})
    with pytest.raises(BadRequestData, match="nesting"):
        parse(a={"value": nested(MAX_DEPTH - 2)})


VALID_GEOMETRIES = [
    {"type": "MultiPoint", "coordinates": [[0, 0], [1, 1]]},
    {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
    {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]]]},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
    {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]]]},
    {"type": "GeometryCollection", "geometries": [POINT]},
    {"type": "Point", "coordinates": [-180, 90, 120.5]},
]


@pytest.mark.parametrize("geometry", VALID_GEOMETRIES)
def test_valid_geometries(geometry: dict[str, Any]) -> None:
    assert only("area", {"type": "GeoProperty", "value": geometry})[0]["value"] == geometry


# -- fragments (append, update, merge) -----------------------------------------------------------

def test_fragment_members() -> None:
    f = parse_fragment({"id": ID, "type": "Device", "scope": ["/a", "/a/b"], "brightness": 2},
                       TERMS, T0, entity_id=ID)
    assert f == Fragment(
        attrs={"https://example.org/brightness": [
            {"type": "Property", "value": 2, "createdAt": T0, "modifiedAt": T0}]},
        types=[D + "Device"], scope=["/a", "/a/b"])


@pytest.mark.parametrize("body", [[], "x", {"id": "urn:other:1"}, {"@context": {}},
                                  {"a": None}, {"scope": "bad"}])
def test_bad_fragments(body: Any) -> None:
    with pytest.raises(BadRequestData):
        parse_fragment(body, TERMS, T0, entity_id=ID)


def test_merge_fragment_nulls_are_deletions() -> None:
    f = parse_fragment({"a": "urn:ngsi-ld:null", "b": {"value": "urn:ngsi-ld:null"},
                        "c": {"object": "urn:ngsi-ld:null"},
                        "d": {"value": 1, "sub": "urn:ngsi-ld:null"}},
                       TERMS, T0, entity_id=ID, allow_null=True)
    assert f.deletions == {D + "a", D + "b", D + "c"}
    assert f.attrs[D + "d"][0][D + "sub"] is None  # merge deletes this sub-attribute
    # Without allow_null the marker is an ordinary string value.
    plain = parse_fragment({"a": "urn:ngsi-ld:null"}, TERMS, T0, entity_id=ID)
    assert plain.attrs[D + "a"][0]["value"] == "urn:ngsi-ld:null" and not plain.deletions


# -- one attribute (PATCH and PUT /attrs/{attrId}) -----------------------------------------------

def test_partial_attribute_has_no_defaults() -> None:
    inst = parse_attribute(D + "a", {"value": 5, "observedAt": "2026-11-23T10:00:00Z"},
                           TERMS, T0, partial=True)
    assert inst == {"value": 5, "observedAt": T0, "modifiedAt": T0}
    typed = parse_attribute(D + "a", {"type": "Property", "value": 5}, TERMS, T0, partial=True)
    assert typed["type"] == "Property"
    vocab = parse_attribute(D + "a", {"vocab": "led"}, TERMS, T0, partial=True)
    assert vocab == {"vocab": D + "led", "modifiedAt": T0}


@pytest.mark.parametrize("body", [5, [{"value": 1}], {"object": "not a uri"},
                                  {"datasetId": "x"}, {"type": "Banana"},
                                  {"vocab": 1, "value": 2}])
def test_bad_partial_attribute(body: Any) -> None:
    with pytest.raises(BadRequestData):
        parse_attribute(D + "a", body, TERMS, T0, partial=True)


def test_put_attribute_instances() -> None:
    insts = parse_attribute(D + "a", [{"value": 1}, {"value": 2, "datasetId": "urn:d:1"}],
                            TERMS, T0)
    assert [i["value"] for i in insts] == [1, 2]
    assert parse_attribute(D + "a", {"object": "urn:a:1"}, TERMS, T0)[0]["type"] == "Relationship"
    with pytest.raises(BadRequestData):
        parse_attribute(D + "a", {"type": "Property"}, TERMS, T0)


# -- URIs and clock ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["urn:ngsi-ld:X:1", "http://a/b", "https://x.org/a?b=c#d"])
def test_uris(value: str) -> None:
    assert require_uri(value, "id") == value


@pytest.mark.parametrize("value", ["abc", "urn:", "lamp 1", "", ":x", "1urn:x", "urn:a<b"])
def test_not_uris(value: str) -> None:
    with pytest.raises(BadRequestData, match=r"entity id .* is not a URI"):
        require_uri(value, "entity id")


@pytest.mark.parametrize(("text", "iso"), [
    ("2026-11-23T12:00:00+02:00", T0),
    ("2026-11-23T10:00:00Z", T0),
    ("2026-11-23T10:00:00.1234Z", "2026-11-23T10:00:00.123Z"),
])
def test_normalize_datetime(text: str, iso: str) -> None:
    assert normalize_datetime(text) == iso


@pytest.mark.parametrize("text", ["garbage", "2026-13-01T00:00:00Z", "2026-11-23", 5, None])
def test_normalize_datetime_refuses(text: Any) -> None:
    with pytest.raises(BadRequestData):
        normalize_datetime(text)


def test_now_iso_shape() -> None:
    now = now_iso()
    assert len(now) == 24 and now.endswith("Z") and normalize_datetime(now) == now


# -- robustness ----------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.sampled_from(["urn:a:1", "Property", "Point", "value", "urn:ngsi-ld:null", "x y", "en"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "type", "value", "object", "coordinates", "languageMap",
                         "datasetId", "objectList", "vocab", "scope", "a", "@id", "geometries",
                         "valueList", "json", "observedAt", "unitCode", "objectType"]),
        inner, max_size=5),
    max_leaves=20,
)
ENTITY_LIKE = st.fixed_dictionaries({"id": st.just(ID), "type": st.just("T")}, optional={
    "a": JSON, "b": JSON, "scope": JSON})


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, ENTITY_LIKE), st.booleans())
def test_parse_raises_only_ngsi_errors(body: Any, key_values: bool) -> None:
    with contextlib.suppress(NgsiError):
        parse_entity(body, TERMS, T0, key_values=key_values)
    for allow_null in (False, True):
        with contextlib.suppress(NgsiError):
            parse_fragment(body, TERMS, T0, entity_id=ID, allow_null=allow_null)
    with contextlib.suppress(NgsiError):
        parse_attribute(D + "a", body, TERMS, T0, partial=key_values)
