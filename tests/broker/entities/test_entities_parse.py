"""Parsing payloads into the internal form (clauses 4.5, 4.6, 4.7, 5.5.x, 5.6.x), with a fake
term map. The fake is imported by the other test_entities_* modules."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.entities.kinds import NULL, is_deletion
from broker.entities.parse import (
    MAX_DEPTH,
    Fragment,
    parse_attribute,
    parse_attributes,
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
STAMPS = {"createdAt": T0, "modifiedAt": T0}


class FakeTerms:
    """A dict of user terms over the core vocabulary; unknown terms go to the default context,
    terms holding ":" are IRIs already (as broker.ld.TermMap does with @vocab)."""

    CORE_TERMS = ("location", "observationSpace", "operationSpace", "scope", "observedAt",
                  "datasetId", "unitCode", "createdAt", "modifiedAt")

    def __init__(self, user: dict[str, str] | None = None) -> None:
        self.user = {t: CORE + t for t in self.CORE_TERMS} | (user or {})
        self.back = {v: k for k, v in self.user.items()}

    def expand(self, term: str) -> str:
        return term if ":" in term else self.user.get(term, D + term)

    def compact(self, iri: str) -> str:
        return self.back.get(iri, iri.removeprefix(D) if iri.startswith(D) else iri)


TERMS: Terms = FakeTerms({"brightness": "https://example.org/brightness",
                          "Lamp": "https://example.org/Lamp", "led": "https://example.org/led"})


def parse(**attrs: Any) -> dict[str, Any]:
    return parse_entity({"id": ID, "type": "Streetlight", **attrs}, TERMS, T0)


def only(name: str, raw: Any) -> list[dict[str, Any]]:
    instances: list[dict[str, Any]] = parse(**{name: raw})["attrs"][TERMS.expand(name)]
    return instances


def frag(body: Any, **kw: Any) -> Fragment:
    return parse_fragment(body, TERMS, T0, entity_id=ID, **kw)


# -- the entity ---------------------------------------------------------------------------------

def test_entity_members_and_stamps() -> None:
    e = parse_entity({"id": ID, "type": ["Streetlight", "Device", "Streetlight"],
                      "scope": "/Craiova/Centru", "createdAt": "1999-01-01T00:00:00Z",
                      "modifiedAt": "1999-01-01T00:00:00Z", "deletedAt": "x",
                      "brightness": 3}, TERMS, T0)
    assert e == {
        "id": ID, "type": [D + "Streetlight", D + "Device"], "scope": ["/Craiova/Centru"],
        "createdAt": T0, "modifiedAt": T0,
        "attrs": {"https://example.org/brightness": [
            {"type": "Property", "value": 3, **STAMPS}]},
    }


def test_json_ld_aliases_and_iri_types() -> None:
    e = parse_entity({"@id": ID, "@type": "https://example.org/Lamp", "scope": ["/a", "/a/b"]},
                     TERMS, T0)
    assert e["id"] == ID and e["type"] == ["https://example.org/Lamp"]
    assert e["scope"] == ["/a", "/a/b"] and e["attrs"] == {}


# Normalized input, one row per kind and member: (raw, internal instance without stamps).
NORMALIZED: dict[str, tuple[Any, Any]] = {
    "property with metadata": (
        {"type": "Property", "value": 21.5, "unitCode": "CEL",
         "observedAt": "2026-11-23T12:00:00+02:00"},
        {"type": "Property", "value": 21.5, "unitCode": "CEL", "observedAt": T0}),
    "compound value kept verbatim": (
        {"type": "Property", "value": {"streetAddress": "Calea Unirii", "value": 1}},
        {"type": "Property", "value": {"streetAddress": "Calea Unirii", "value": 1}}),
    "typed literal value": (
        {"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-23T10:00:00Z"}},
        {"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-23T10:00:00Z"}}),
    "property holding a geometry stays a property": (
        {"type": "Property", "value": POINT}, {"type": "Property", "value": POINT}),
    "relationship": (
        {"type": "Relationship", "object": "urn:ngsi-ld:Group:1", "objectType": "Group"},
        {"type": "Relationship", "object": "urn:ngsi-ld:Group:1", "objectType": D + "Group"}),
    "relationship to several": (
        {"type": "Relationship", "object": ["urn:a:1", "urn:a:2"], "objectType": ["A", "Lamp"]},
        {"type": "Relationship", "object": ["urn:a:1", "urn:a:2"],
         "objectType": [D + "A", "https://example.org/Lamp"]}),
    "geoproperty": ({"type": "GeoProperty", "value": POINT},
                    {"type": "GeoProperty", "value": POINT}),
    "geoproperty as encoded string (4.7.2)": (
        {"type": "GeoProperty", "value": '{"type": "Point", "coordinates": [23.8, 44.3]}'},
        {"type": "GeoProperty", "value": POINT}),
    "languageproperty": (
        {"type": "LanguageProperty", "languageMap": {"ro": "Lampă", "en": ["Lamp", "Light"],
                                                     "@none": "L"}, "valueType": "langString"},
        {"type": "LanguageProperty", "languageMap": {"ro": "Lampă", "en": ["Lamp", "Light"],
                                                     "@none": "L"}, "valueType": "langString"}),
    "vocabproperty expanded": (
        {"type": "VocabProperty", "vocab": ["led", "location", "urn:x:y"]},
        {"type": "VocabProperty", "vocab": ["https://example.org/led", CORE + "location",
                                            "urn:x:y"]}),
    "jsonproperty never expanded": (
        {"type": "JsonProperty", "json": {"a": [1, None], "type": "x", "@id": "y"}},
        {"type": "JsonProperty", "json": {"a": [1, None], "type": "x", "@id": "y"}}),
    "listproperty with valueType": (
        {"type": "ListProperty", "valueList": [1, "a"], "valueType": "Integer"},
        {"type": "ListProperty", "valueList": [1, "a"], "valueType": D + "Integer"}),
    "listrelationship, both spellings": (
        {"type": "ListRelationship", "objectList": ["urn:a:1", {"object": "urn:a:2"}],
         "objectType": "Lamp"},
        {"type": "ListRelationship", "objectList": ["urn:a:1", "urn:a:2"],
         "objectType": "https://example.org/Lamp"}),
    "datasetId kept": ({"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:Dataset:a"},
                       {"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:Dataset:a"}),
    "datasetId @none is the default instance": (
        {"type": "Property", "value": 1, "datasetId": "@none"}, {"type": "Property", "value": 1}),
    "broker-owned and output-only members ignored": (
        {"type": "Property", "value": 1, "createdAt": "x", "modifiedAt": "y", "instanceId": "z",
         "lang": "en", "previousValue": 0},
        {"type": "Property", "value": 1}),
}

# Concise input (clause 4.5.2.3 and its siblings): the same instances, "type" inferred.
CONCISE: dict[str, tuple[Any, Any]] = {
    "number": (7, {"type": "Property", "value": 7}),
    "string": ("on", {"type": "Property", "value": "on"}),
    "false": (False, {"type": "Property", "value": False}),
    "list of values": ([1, {"a": 2}], {"type": "Property", "value": [1, {"a": 2}]}),
    "empty list": ([], {"type": "Property", "value": []}),
    "object naming no kind is the whole value": (
        {"streetAddress": "X", "city": {"name": "Craiova"}},
        {"type": "Property", "value": {"streetAddress": "X", "city": {"name": "Craiova"}}}),
    "value with metadata": ({"value": {"a": 1}, "unitCode": "C"},
                            {"type": "Property", "value": {"a": 1}, "unitCode": "C"}),
    "object": ({"object": "urn:a:1"}, {"type": "Relationship", "object": "urn:a:1"}),
    "languageMap": ({"languageMap": {"ro": "x"}},
                    {"type": "LanguageProperty", "languageMap": {"ro": "x"}}),
    "vocab": ({"vocab": "led"}, {"type": "VocabProperty", "vocab": "https://example.org/led"}),
    "json": ({"json": [1]}, {"type": "JsonProperty", "json": [1]}),
    "valueList": ({"valueList": []}, {"type": "ListProperty", "valueList": []}),
    "objectList": ({"objectList": ["urn:a:1"]},
                   {"type": "ListRelationship", "objectList": ["urn:a:1"]}),
    "bare geometry": (POINT, {"type": "GeoProperty", "value": POINT}),
    "value holding a geometry": ({"value": POINT}, {"type": "GeoProperty", "value": POINT}),
}


@pytest.mark.parametrize("case", sorted(NORMALIZED))
def test_normalized_kinds(case: str) -> None:
    raw, expected = NORMALIZED[case]
    assert only("a", raw) == [{**expected, **STAMPS}]


@pytest.mark.parametrize("case", sorted(CONCISE))
def test_concise_kinds(case: str) -> None:
    raw, expected = CONCISE[case]
    assert only("a", raw) == [{**expected, **STAMPS}]


def test_sub_attributes_expanded_recursively_and_stamped() -> None:
    [inst] = only("temp", {"value": 20, "accuracy": {"type": "Property", "value": 0.1,
                                                     "source": "urn:x:1"},
                           "measuredBy": {"object": "urn:ngsi-ld:Sensor:1"},
                           "brightness": 3, "modifiedAt": "1999-01-01T00:00:00Z"})
    assert inst == {
        "type": "Property", "value": 20, **STAMPS,
        D + "accuracy": {"type": "Property", "value": 0.1, **STAMPS,
                         D + "source": {"type": "Property", "value": "urn:x:1", **STAMPS}},
        D + "measuredBy": {"type": "Relationship", "object": "urn:ngsi-ld:Sensor:1", **STAMPS},
        "https://example.org/brightness": {"type": "Property", "value": 3, **STAMPS},
    }


def test_multi_instance_by_dataset_id() -> None:
    insts = only("temp", [{"type": "Property", "value": 1},
                          {"value": 2, "datasetId": "urn:ngsi-ld:Dataset:b"},
                          {"object": "urn:a:1", "datasetId": "urn:ngsi-ld:Dataset:c"}])
    assert [(i["type"], i.get("datasetId")) for i in insts] == [
        ("Property", None), ("Property", "urn:ngsi-ld:Dataset:b"),
        ("Relationship", "urn:ngsi-ld:Dataset:c")]


def test_key_values_input() -> None:
    e = parse_entity({"id": ID, "type": "T", "brightness": {"value": 1}, "location": POINT,
                      "tags": ["a"], "name": {"languageMap": {"en": "x"}}},
                     TERMS, T0, key_values=True)
    assert e["attrs"] == {
        "https://example.org/brightness": [{"type": "Property", "value": {"value": 1},
                                            **STAMPS}],
        CORE + "location": [{"type": "GeoProperty", "value": POINT, **STAMPS}],
        D + "tags": [{"type": "Property", "value": ["a"], **STAMPS}],
        D + "name": [{"type": "Property", "value": {"languageMap": {"en": "x"}}, **STAMPS}],
    }


# -- validation --------------------------------------------------------------------------------

def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def bad(**attrs: Any) -> dict[str, Any]:
    return {"id": ID, "type": "T", **attrs}


# why -> (payload, a fragment the error detail must hold)
BAD_ENTITIES: dict[str, tuple[Any, str]] = {
    "not an object": ([ID], "JSON object"),
    "missing id": ({"type": "T"}, "Entity id None is not a URI"),
    "missing type": ({"id": ID}, "has no type"),
    "id not a URI": ({"id": "lamp 1", "type": "T"}, "is not a URI"),
    "id relative": ({"id": "abc", "type": "T"}, "is not a URI"),
    "id scheme alone": ({"id": "urn:", "type": "T"}, "is not a URI"),
    "id with control character": ({"id": "urn:a:\x01", "type": "T"}, "is not a URI"),
    "id a number": ({"id": 5, "type": "T"}, "is not a URI"),
    "id and @id": ({"id": ID, "@id": ID, "type": "T"}, "Both id and @id"),
    "type empty list": ({"id": ID, "type": []}, "Entity type"),
    "type empty string": ({"id": ID, "type": ""}, "Entity type"),
    "type not a string": ({"id": ID, "type": 5}, "Invalid Entity type name 5"),
    "type with a space": ({"id": ID, "type": "Street light"}, "Street light"),
    "type a bad IRI": ({"id": ID, "type": "a:b c"}, "is not a URI"),
    "scope not a path": (bad(scope="Craiova"), "scope"),
    "scope with wildcard": (bad(scope="/Craiova/#"), "scope"),
    "scope empty list": (bad(scope=[]), "scope"),
    "@context as attribute": (bad(**{"@context": {}}), "JSON-LD keyword"),
    "@context embedded in an attribute": (bad(a={"@context": {}, "value": 1}), "@context"),
    "@context embedded in a concise value": (bad(a={"@context": {}}), "@context"),
    "@type as sub-attribute": (bad(a={"value": 1, "@type": "x"}), "JSON-LD keyword"),
    "@ name": (bad(**{"@foo": 1}), "JSON-LD keyword"),
    "id as sub-attribute": (bad(a={"value": 1, "id": {"value": 2}}), "'id'"),
    "scope as sub-attribute": (bad(a={"value": 1, "scope": {"value": 2}}), "'scope'"),
    "core member as attribute": (bad(observedAt="2026-11-23T10:00:00Z"), "core member"),
    "datasetId as attribute": (bad(datasetId="urn:a:1"), "core member"),
    "core IRI as attribute": (bad(**{CORE + "unitCode": "C"}), "core member"),
    "name with space": (bad(**{"a b": 1}), "Invalid attribute name"),
    "name with quote": (bad(**{"a'b": 1}), "Invalid attribute name"),
    "name with =": (bad(**{"a=b": 1}), "Invalid attribute name"),
    "name with (": (bad(**{"a(b": 1}), "Invalid attribute name"),
    "name with ;": (bad(**{"a;b": 1}), "Invalid attribute name"),
    "name with <": (bad(**{"a<b": 1}), "Invalid attribute name"),
    "name with control": (bad(**{"a\x01": 1}), "Invalid attribute name"),
    "empty name": (bad(**{"": 1}), "Invalid attribute name"),
    "name too long": (bad(**{"a" * 257: 1}), "Invalid attribute name"),
    "term and its IRI": (bad(**{"brightness": 1, "https://example.org/brightness": 2}),
                         "Two members"),
    "sub-attribute term and IRI": (bad(a={"value": 1, "b": 1, D + "b": 2}), "two sub-attr"),
    "null attribute": (bad(a=None), "Attribute a"),
    "Property null value": (bad(a={"type": "Property", "value": None}), "Attribute a"),
    "Property without value": (bad(a={"type": "Property"}), "needs its value"),
    "Relationship without object": (bad(a={"type": "Relationship"}), "needs its object"),
    "NGSI-LD Null outside merge": (bad(a=NULL), "urn:ngsi-ld:null"),
    "NGSI-LD Null as value": (bad(a={"value": NULL}), "urn:ngsi-ld:null"),
    "NGSI-LD Null in a compound value": (bad(a={"value": {"b": NULL}}), "urn:ngsi-ld:null"),
    "NGSI-LD Null in a list": (bad(a=[1, NULL]), "urn:ngsi-ld:null"),
    "NGSI-LD Null as languageMap": (bad(a={"languageMap": {"@none": NULL}}),
                                    "urn:ngsi-ld:null"),
    "NGSI-LD Null as unitCode": (bad(a={"value": 1, "unitCode": NULL}), "urn:ngsi-ld:null"),
    "NGSI-LD Null as sub-attribute": (bad(a={"value": 1, "b": NULL}), "urn:ngsi-ld:null"),
    "unknown attribute type": (bad(a={"type": "Banana", "value": 1}), "'Banana'"),
    "list as attribute type": (bad(a={"type": ["Property"], "value": 1}), "attribute type"),
    "foreign value member": (bad(a={"type": "Property", "object": "urn:a:1"}),
                             "object does not belong to a Property"),
    "two value members": (bad(a={"value": 1, "object": "urn:a:1"}), "does not belong"),
    "object not a URI": (bad(a={"type": "Relationship", "object": "x y"}), "object"),
    "object empty list": (bad(a={"object": []}), "non-empty list"),
    "object a number": (bad(a={"object": 5}), "is not a URI"),
    "objectList not URIs": (bad(a={"objectList": ["urn:a:1", 3]}), "objectList entry"),
    "objectList not a list": (bad(a={"objectList": "urn:a:1"}), "objectList"),
    "valueList not a list": (bad(a={"valueList": 1}), "valueList"),
    "languageMap not a map": (bad(a={"languageMap": "x"}), "languageMap"),
    "languageMap empty": (bad(a={"languageMap": {}}), "languageMap"),
    "languageMap number": (bad(a={"languageMap": {"en": 1}}), "languageMap"),
    "languageMap bad tag": (bad(a={"languageMap": {"e n": "x"}}), "language tag"),
    "valueType of a LanguageProperty": (
        bad(a={"languageMap": {"en": "x"}, "valueType": "Text"}), "langString"),
    "vocab number": (bad(a={"vocab": 3}), "vocab"),
    "vocab empty list": (bad(a={"vocab": []}), "vocab"),
    "vocab with a space": (bad(a={"vocab": "a b"}), "vocab"),
    "json null": (bad(a={"type": "JsonProperty", "json": None}), "json"),
    "objectType on a Property": (bad(a={"value": 1, "objectType": "T"}), "objectType"),
    "objectType a number": (bad(a={"object": "urn:a:1", "objectType": 5}), "objectType"),
    "unitCode on a Relationship": (bad(a={"object": "urn:a:1", "unitCode": "C"}), "unitless"),
    "unitCode on a LanguageProperty": (bad(a={"languageMap": {"en": "x"}, "unitCode": "C"}),
                                       "unitless"),
    "unitCode not a string": (bad(a={"value": 1, "unitCode": 5}), "unitCode"),
    "bad datasetId": (bad(a={"value": 1, "datasetId": "x"}), "datasetId"),
    "datasetId a number": (bad(a={"value": 1, "datasetId": 1}), "datasetId"),
    "duplicate datasetId": (bad(a=[{"value": 1, "datasetId": "urn:d:1"},
                                   {"value": 2, "datasetId": "urn:d:1"}]), "datasetId urn:d:1"),
    "two default instances": (bad(a=[{"value": 1}, {"value": 2}]), "default instance"),
    "default instance twice, once named": (bad(a=[{"value": 1},
                                                  {"value": 2, "datasetId": "@none"}]),
                                           "default instance"),
    "sub-attribute with datasetId": (bad(a={"value": 1, "b": {"value": 2,
                                                              "datasetId": "urn:d:1"}}),
                                     "sub-attribute has no datasetId"),
    "bad observedAt": (bad(a={"value": 1, "observedAt": "yesterday"}), "observedAt"),
    "bad sub-attribute": (bad(a={"value": 1, "b": {"type": "Banana"}}), "Attribute a.b"),
    "bad sub-sub-attribute": (bad(a={"value": 1, "b": {"value": 1, "c": {"object": "x"}}}),
                              "Attribute a.b.c"),
    "nesting too deep": (bad(a={"value": nested(MAX_DEPTH)}), "nesting deeper"),
    "location not a GeoProperty": (bad(location={"type": "Property", "value": 1}),
                                   "always a GeoProperty"),
    "observationSpace a plain value": (bad(observationSpace="here"), "always a GeoProperty"),
    "geo value not a geometry": (bad(a={"type": "GeoProperty", "value": 1}), "GeoJSON"),
    "geo encoded string not JSON": (bad(a={"type": "GeoProperty", "value": "Point"}),
                                    "JSON-encoded"),
    "geo unknown geometry type": (bad(a={"type": "GeoProperty", "value": {
        "type": "Circle", "coordinates": [1, 2]}}), "'Circle'"),
    "geo longitude": (bad(a={"type": "Point", "coordinates": [181, 0]}), "outside"),
    "geo latitude": (bad(a={"type": "Point", "coordinates": [0, -91]}), "outside"),
    "geo string coordinate": (bad(a={"type": "Point", "coordinates": ["1", 2]}), "position"),
    "geo bool coordinate": (bad(a={"type": "Point", "coordinates": [True, 2]}), "position"),
    "geo four numbers": (bad(a={"type": "Point", "coordinates": [1, 2, 3, 4]}), "position"),
    "geo open ring": (bad(a={"type": "Polygon", "coordinates": [
        [[0, 0], [1, 0], [1, 1], [0, 1]]]}), "closed"),
    "geo short ring": (bad(a={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}),
                       "at least 4"),
    "geo empty polygon": (bad(a={"type": "Polygon", "coordinates": []}), "linear rings"),
    "geo short line": (bad(a={"type": "LineString", "coordinates": [[0, 0]]}), "at least 2"),
    "geo no coordinates": (bad(a={"type": "GeoProperty", "value": {"type": "Point"}}),
                           "needs coordinates"),
    "geo bad collection member": (bad(a={"type": "GeometryCollection", "geometries": [
        {"type": "Point", "coordinates": [0]}]}), "position"),
    "geo nested collection": (bad(a={"type": "GeometryCollection", "geometries": [
        {"type": "GeometryCollection", "geometries": []}]}), "nested"),
}


@pytest.mark.parametrize("why", sorted(BAD_ENTITIES))
def test_bad_entities_are_refused(why: str) -> None:
    body, detail = BAD_ENTITIES[why]
    with pytest.raises(BadRequestData) as caught:
        parse_entity(body, TERMS, T0)
    assert detail in caught.value.detail


def test_errors_name_the_attribute_and_fault() -> None:
    with pytest.raises(BadRequestData, match=r"Attribute temp: datasetId 'nope' is not a URI"):
        parse(temp={"value": 1, "datasetId": "nope"})
    with pytest.raises(BadRequestData, match=r"Attribute temp.acc: 'Banana' is not an attr"):
        parse(temp={"value": 1, "acc": {"type": "Banana", "value": 1}})


def test_key_values_refuses_null_and_bad_geometry() -> None:
    for value in (None, NULL, {"type": "Point", "coordinates": [500, 0]}):
        with pytest.raises(BadRequestData):
            parse_entity({"id": ID, "type": "T", "a": value}, TERMS, T0, key_values=True)


def test_depth_limit_is_exact() -> None:
    # The body is level 1, the attribute level 2, its value member level 3.
    parse(a={"value": nested(MAX_DEPTH - 3)})
    with pytest.raises(BadRequestData, match="nesting"):
        parse(a={"value": nested(MAX_DEPTH - 2)})


VALID_GEOMETRIES = [
    {"type": "MultiPoint", "coordinates": []},
    {"type": "MultiPoint", "coordinates": [[0, 0], [1, 1]]},
    {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
    {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]]]},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
    {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]]]},
    {"type": "GeometryCollection", "geometries": [POINT]},
    {"type": "Point", "coordinates": [-180, 90, 120.5]},
    {"type": "Point", "coordinates": [180, -90]},
]


@pytest.mark.parametrize("geometry", VALID_GEOMETRIES)
def test_valid_geometries(geometry: dict[str, Any]) -> None:
    assert only("area", {"type": "GeoProperty", "value": geometry})[0]["value"] == geometry
    assert only("area", geometry)[0]["type"] == "GeoProperty"


# -- fragments (append, update, merge) -----------------------------------------------------------

def test_fragment_members() -> None:
    f = frag({"id": ID, "type": "Device", "scope": ["/a", "/a/b"], "brightness": 2,
              "createdAt": "x"})
    assert f == Fragment(
        attrs={"https://example.org/brightness": [{"type": "Property", "value": 2, **STAMPS}]},
        types=[D + "Device"], scope=["/a", "/a/b"])
    assert parse_fragment({"a": 1}, TERMS, T0) == Fragment(
        attrs={D + "a": [{"type": "Property", "value": 1, **STAMPS}]})


@pytest.mark.parametrize("body", [[], "x", {"id": "urn:other:1"}, {"id": "not a uri"},
                                  {"@context": {}}, {"a": None}, {"scope": "bad"},
                                  {"a": NULL}, {"scope": NULL}, {"type": []}])
def test_bad_fragments(body: Any) -> None:
    with pytest.raises(BadRequestData):
        frag(body)


def test_parse_attributes_takes_attributes_only() -> None:
    assert parse_attributes({"a": 1}, TERMS, T0) == {D + "a": [
        {"type": "Property", "value": 1, **STAMPS}]}
    for body in ({"id": ID}, {"type": "T"}, {"scope": "/a"}):
        with pytest.raises(BadRequestData, match="core member"):
            parse_attributes(body, TERMS, T0)
    attrs = parse_attributes({"a": NULL}, TERMS, T0, allow_null=True)
    assert attrs == {D + "a": [{"value": NULL}]}


# merge (clause 5.5.12): (payload of attribute "a", the instances parsed)
MERGE_NULLS: dict[str, tuple[Any, list[dict[str, Any]]]] = {
    "bare": (NULL, [{"value": NULL}]),
    "value": ({"type": "Property", "value": NULL}, [{"value": NULL}]),
    "object": ({"object": NULL}, [{"value": NULL}]),
    "languageMap @none": ({"languageMap": {"@none": NULL}}, [{"value": NULL}]),
    "vocab": ({"vocab": NULL}, [{"value": NULL}]),
    "json": ({"json": NULL}, [{"value": NULL}]),
    "valueList": ({"valueList": [NULL]}, [{"value": NULL}]),
    "objectList": ({"objectList": [{"object": NULL}]}, [{"value": NULL}]),
    "one instance of several": (
        [{"value": NULL, "datasetId": "urn:d:1"}, {"value": 2, "datasetId": "urn:d:2"}],
        [{"value": NULL, "datasetId": "urn:d:1"},
         {"type": "Property", "value": 2, "datasetId": "urn:d:2", **STAMPS}]),
    "members and sub-attributes": (
        {"value": {"keep": 1, "drop": NULL}, "unitCode": NULL, "sub": NULL,
         "other": {"value": NULL}},
        [{"type": "Property", "value": {"keep": 1, "drop": NULL}, "unitCode": None,
          D + "sub": None, D + "other": None, **STAMPS}]),
    "languages": ({"languageMap": {"en": NULL, "ro": "x"}},
                  [{"type": "LanguageProperty", "languageMap": {"en": NULL, "ro": "x"},
                    **STAMPS}]),
}


@pytest.mark.parametrize("case", sorted(MERGE_NULLS))
def test_merge_fragment_nulls(case: str) -> None:
    raw, expected = MERGE_NULLS[case]
    f = frag({"a": raw}, allow_null=True)
    assert f.attrs[D + "a"] == expected
    assert [is_deletion(i) for i in expected] == [i.get("value") == NULL for i in expected]


def test_merge_fragment_scope_and_key_values() -> None:
    assert frag({"scope": NULL}, allow_null=True).scope == []
    f = frag({"a": NULL, "b": {"x": NULL}}, allow_null=True, key_values=True)
    assert f.attrs[D + "a"] == [{"value": NULL}]
    assert f.attrs[D + "b"][0]["value"] == {"x": NULL}


@pytest.mark.parametrize("raw", [None, {"value": None}, {"value": 1, "datasetId": NULL},
                                 [1, NULL], {"value": [NULL]}])
def test_merge_still_refuses(raw: Any) -> None:
    with pytest.raises(BadRequestData):
        frag({"a": raw}, allow_null=True)


# -- one attribute (PATCH and PUT /attrs/{attrId}) -----------------------------------------------

PATCHES: dict[str, tuple[Any, dict[str, Any]]] = {
    "bare value, kind left to the stored one": (
        {"value": 5, "observedAt": "2026-11-23T10:00:00Z"},
        {"value": 5, "observedAt": T0, "modifiedAt": T0}),
    "typed": ({"type": "Property", "value": 5},
              {"type": "Property", "value": 5, "modifiedAt": T0}),
    "vocab expanded": ({"vocab": "led"}, {"vocab": "https://example.org/led",
                                          "modifiedAt": T0}),
    "members only": ({"unitCode": "MTR"}, {"unitCode": "MTR", "modifiedAt": T0}),
    "sub-attribute added and one removed": (
        {"acc": {"value": 1}, "old": NULL},
        {D + "acc": {"type": "Property", "value": 1, **STAMPS}, D + "old": None,
         "modifiedAt": T0}),
    "member removed": ({"observedAt": NULL}, {"observedAt": None, "modifiedAt": T0}),
    "instance deleted (5.5.8)": ({"value": NULL}, {"value": NULL}),
    "instance of a dataset deleted": ({"type": "Property", "value": NULL,
                                       "datasetId": "urn:d:1"},
                                      {"value": NULL, "datasetId": "urn:d:1"}),
}


@pytest.mark.parametrize("case", sorted(PATCHES))
def test_partial_attribute(case: str) -> None:
    raw, expected = PATCHES[case]
    assert parse_attribute(D + "a", raw, TERMS, T0, partial=True) == expected


@pytest.mark.parametrize("body", [5, [{"value": 1}], {"object": "not a uri"},
                                  {"datasetId": "x"}, {"type": "Banana"},
                                  {"vocab": 1, "value": 2}, {"value": {"k": NULL}},
                                  {"value": None}, {"datasetId": NULL, "value": 1},
                                  {"@context": {}, "value": 1}])
def test_bad_partial_attribute(body: Any) -> None:
    with pytest.raises(BadRequestData):
        parse_attribute(D + "a", body, TERMS, T0, partial=True)


def test_put_attribute_instances() -> None:
    insts = parse_attribute(D + "a", [{"value": 1}, {"value": 2, "datasetId": "urn:d:1"}],
                            TERMS, T0)
    assert [i["value"] for i in insts] == [1, 2]
    assert parse_attribute(D + "a", {"object": "urn:a:1"}, TERMS, T0)[0]["type"] == "Relationship"
    for body in ({"type": "Property"}, NULL, [{"value": 1}, {"value": 1}]):
        with pytest.raises(BadRequestData):
            parse_attribute(D + "a", body, TERMS, T0)
    with pytest.raises(BadRequestData, match="GeoProperty"):
        parse_attribute(CORE + "location", 5, TERMS, T0)
    with pytest.raises(BadRequestData, match="core member"):
        parse_attribute(CORE + "observedAt", 5, TERMS, T0)


# -- URIs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["urn:ngsi-ld:X:1", "http://a/b", "https://x.org/a?b=c#d",
                                   "urn:ngsi-ld:Stradă:1", "a:b"])
def test_uris(value: str) -> None:
    assert require_uri(value, "id") == value


@pytest.mark.parametrize("value", ["abc", "urn:", "lamp 1", "", ":x", "1urn:x", "urn:a<b",
                                   "urn:a b", "urn:a\nb", "urn:a\x7f", "urn:{x}"])
def test_not_uris(value: str) -> None:
    with pytest.raises(BadRequestData, match=r"entity id .* is not a URI"):
        require_uri(value, "entity id")


# -- robustness ----------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.sampled_from(["urn:a:1", "Property", "Point", "value", NULL, "x y", "en",
                              "2026-11-23T10:00:00Z", "@none", "/a/b", "langString"])
           | st.text(max_size=6))
KEYS = st.sampled_from(["id", "type", "value", "object", "coordinates", "languageMap",
                        "datasetId", "objectList", "vocab", "scope", "a", "@id", "geometries",
                        "valueList", "json", "observedAt", "unitCode", "objectType",
                        "valueType", "location", "@context", "b", "en", "@none"]) \
    | st.text(max_size=6)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(KEYS, inner, max_size=5), max_leaves=25)
ENTITY_LIKE = st.fixed_dictionaries({"id": st.just(ID), "type": st.just("T")}, optional={
    "a": JSON, "b": JSON, "location": JSON, "scope": JSON})


@settings(max_examples=400, deadline=None)
@given(st.one_of(JSON, ENTITY_LIKE), st.booleans())
def test_parse_raises_only_ngsi_errors(body: Any, flag: bool) -> None:
    with contextlib.suppress(NgsiError):
        parse_entity(body, TERMS, T0, key_values=flag)
    with contextlib.suppress(NgsiError):
        parse_fragment(body, TERMS, T0, entity_id=ID, allow_null=flag)
    with contextlib.suppress(NgsiError):
        parse_attributes(body, TERMS, T0, allow_null=flag, key_values=not flag)
    with contextlib.suppress(NgsiError):
        parse_attribute(D + "a", body, TERMS, T0, partial=flag)
