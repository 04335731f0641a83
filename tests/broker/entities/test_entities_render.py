"""Rendering (clauses 4.5.x, 4.15, 4.5.16, 4.21, 5.7.1): normalized, concise, keyValues,
sysAttrs, pick/omit/attrs, lang and GeoJSON, as round trips through the internal form."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.entities.kinds import CORE
from broker.entities.lang import language_ranges, pick_language
from broker.entities.parse import parse_entity
from broker.entities.render import (
    RenderOptions,
    render_attribute,
    render_entity,
    render_geojson,
)
from broker.errors import BadRequestData
from tests.broker.entities.test_entities_parse import TERMS, D

T0 = "2026-11-23T10:00:00.000Z"
ID = "urn:ngsi-ld:Streetlight:1"
POINT = {"type": "Point", "coordinates": [23.8, 44.3]}
STAMPS = {"createdAt": T0, "modifiedAt": T0}

# name: (normalized, concise, keyValues)
KINDS: dict[str, tuple[Any, Any, Any]] = {
    "p": ({"type": "Property", "value": 21.5}, 21.5, 21.5),
    "pm": ({"type": "Property", "value": {"a": 1}, "unitCode": "CEL", "observedAt": T0},
           {"value": {"a": 1}, "unitCode": "CEL", "observedAt": T0}, {"a": 1}),
    "compound": ({"type": "Property", "value": {"street": "Unirii"}}, {"street": "Unirii"},
                 {"street": "Unirii"}),
    "ambiguous": ({"type": "Property", "value": {"value": 1}}, {"value": {"value": 1}},
                  {"value": 1}),
    "typed": ({"type": "Property", "value": {"type": "x"}}, {"value": {"type": "x"}},
              {"type": "x"}),
    "geoAsProperty": ({"type": "Property", "value": POINT},
                      {"type": "Property", "value": POINT}, POINT),
    "instanceLike": ({"type": "Property", "value": [{"value": 1}]},
                     {"value": [{"value": 1}]}, [{"value": 1}]),
    "r": ({"type": "Relationship", "object": "urn:ngsi-ld:Group:1", "objectType": "Lamp"},
          {"object": "urn:ngsi-ld:Group:1", "objectType": "Lamp"}, "urn:ngsi-ld:Group:1"),
    "location": ({"type": "GeoProperty", "value": POINT}, POINT, POINT),
    "observationSpace": ({"type": "GeoProperty", "value": POINT, "observedAt": T0},
                         {"value": POINT, "observedAt": T0}, POINT),
    "name": ({"type": "LanguageProperty", "languageMap": {"ro": "Lampă", "en": "Lamp"}},
             {"languageMap": {"ro": "Lampă", "en": "Lamp"}},
             {"languageMap": {"ro": "Lampă", "en": "Lamp"}}),
    "cat": ({"type": "VocabProperty", "vocab": "led"}, {"vocab": "led"}, "led"),
    "cats": ({"type": "VocabProperty", "vocab": ["led", "x"]}, {"vocab": ["led", "x"]},
             ["led", "x"]),
    "cfg": ({"type": "JsonProperty", "json": {"x": [1, None]}}, {"json": {"x": [1, None]}},
            {"json": {"x": [1, None]}}),
    "lst": ({"type": "ListProperty", "valueList": [1, "a"], "valueType": "Lamp"},
            {"valueList": [1, "a"], "valueType": "Lamp"}, [1, "a"]),
    "rl": ({"type": "ListRelationship", "objectList": ["urn:a:1"]},
           {"objectList": ["urn:a:1"]}, ["urn:a:1"]),
    "sub": ({"type": "Property", "value": 1, "acc": {"type": "Property", "value": 0.1},
             "by": {"type": "Relationship", "object": "urn:s:1"},
             "at": {"type": "GeoProperty", "value": POINT}},
            {"value": 1, "acc": 0.1, "by": {"object": "urn:s:1"}, "at": POINT}, 1),
    "multi": ([{"type": "Property", "value": 1, "datasetId": "urn:d:1"},
               {"type": "Property", "value": 2}],
              [{"value": 1, "datasetId": "urn:d:1"}, {"value": 2}],
              {"dataset": {"urn:d:1": 1, "@none": 2}}),
    "multiKinds": ([{"type": "Relationship", "object": "urn:a:1", "datasetId": "urn:d:1"},
                    {"type": "GeoProperty", "value": POINT, "datasetId": "urn:d:2"}],
                   [{"object": "urn:a:1", "datasetId": "urn:d:1"},
                    {"value": POINT, "datasetId": "urn:d:2"}],
                   {"dataset": {"urn:d:1": "urn:a:1", "urn:d:2": POINT}}),
}
FORMATS = {"normalized": 0, "concise": 1, "keyValues": 2}


def entity(**attrs: Any) -> dict[str, Any]:
    return parse_entity({"id": ID, "type": "Lamp", **attrs}, TERMS, T0)


def render(e: dict[str, Any], **opts: Any) -> dict[str, Any]:
    return render_entity(e, TERMS, RenderOptions(**opts))


@pytest.mark.parametrize("source", ["normalized", "concise"])
@pytest.mark.parametrize("target", sorted(FORMATS))
@pytest.mark.parametrize("name", sorted(KINDS))
def test_round_trip(name: str, source: str, target: str) -> None:
    e = entity(**{name: KINDS[name][FORMATS[source]]})
    assert render(e, format=target) == {"id": ID, "type": "Lamp",
                                        name: KINDS[name][FORMATS[target]]}


def test_list_relationship_in_normalized_input_spelling() -> None:
    e = entity(rl={"type": "ListRelationship", "objectList": [{"object": "urn:a:1"}]})
    assert render(e)["rl"] == KINDS["rl"][0]


def test_types_and_scope() -> None:
    e = parse_entity({"id": ID, "type": ["Lamp", "Device"], "scope": ["/a", "/b"]}, TERMS, T0)
    assert render(e) == {"id": ID, "type": ["Lamp", "Device"], "scope": ["/a", "/b"]}
    one = parse_entity({"id": ID, "type": "Lamp", "scope": "/a"}, TERMS, T0)
    assert render(one)["scope"] == "/a"
    assert render(one, format="keyValues") == {"id": ID, "type": "Lamp", "scope": "/a"}


def test_unknown_format_is_refused() -> None:
    with pytest.raises(BadRequestData, match="normalized, concise, keyValues"):
        render(entity(p=1), format="simplified")


def test_sys_attrs() -> None:
    e = entity(p={"value": 1, "acc": {"value": 2}})
    assert render(e, sys_attrs=True) == {
        "id": ID, "type": "Lamp", **STAMPS,
        "p": {"type": "Property", "value": 1, **STAMPS,
              "acc": {"type": "Property", "value": 2, **STAMPS}}}
    assert render(e, format="concise", sys_attrs=True) == {
        "id": ID, "type": "Lamp", **STAMPS, "p": {"value": 1, **STAMPS,
                                                  "acc": {"value": 2, **STAMPS}}}
    assert render(e, format="keyValues", sys_attrs=True) == {"id": ID, "type": "Lamp",
                                                             **STAMPS, "p": 1}
    assert "createdAt" not in render(e)


@pytest.mark.parametrize(("opts", "keys"), [
    ({}, ["a", "b", "id", "scope", "type"]),
    ({"pick": {"id", D + "a"}}, ["a", "id"]),
    ({"pick": {"type"}}, ["type"]),
    ({"pick": {"scope"}}, ["scope"]),
    ({"pick": {CORE + "scope"}}, ["scope"]),
    ({"omit": {"type", D + "b"}}, ["a", "id", "scope"]),
    ({"omit": {"id", "scope"}}, ["a", "b", "type"]),
    ({"attrs": {D + "b"}}, ["b", "id", "scope", "type"]),
    ({"attrs": {D + "b"}, "omit": {"id"}}, ["b", "scope", "type"]),
    ({"attrs": frozenset()}, ["id", "scope", "type"]),
    ({"pick": {"id", "createdAt"}, "sys_attrs": True}, ["createdAt", "id"]),
])
def test_projection(opts: dict[str, Any], keys: list[str]) -> None:
    options = RenderOptions(**{k: frozenset(v) if isinstance(v, set | frozenset) else v
                               for k, v in opts.items()})
    e = parse_entity({"id": ID, "type": "Lamp", "scope": "/s", "a": 1, "b": 2}, TERMS, T0)
    assert sorted(render_entity(e, TERMS, options)) == keys


@pytest.mark.parametrize(("dataset_ids", "expected"), [
    (None, KINDS["multi"][0]),
    ({"urn:d:1"}, KINDS["multi"][0][0]),
    ({"@none"}, KINDS["multi"][0][1]),
    ({"urn:d:9"}, None),
])
def test_dataset_selection(dataset_ids: set[str] | None, expected: Any) -> None:
    opts = RenderOptions(dataset_ids=None if dataset_ids is None else frozenset(dataset_ids))
    out = render_entity(entity(m=KINDS["multi"][0]), TERMS, opts)
    assert out.get("m") == expected


# -- lang (clause 4.15) --------------------------------------------------------------------------

NAME = {"type": "LanguageProperty", "languageMap": {"ro": "Lampă", "en-GB": "Lamp",
                                                    "@none": "Lampa"}}


@pytest.mark.parametrize(("lang", "tag", "text"), [
    ("ro", "ro", "Lampă"),
    ("RO", "ro", "Lampă"),
    ("en", "en-GB", "Lamp"),                 # a range matches a more specific tag
    ("en-GB-oxendict", "en-GB", "Lamp"),     # lookup cuts a range back (RFC 4647 3.4)
    ("de,en;q=0.5", "en-GB", "Lamp"),
    ("fr;q=0.1,ro;q=0.9", "ro", "Lampă"),
    ("ro;q=0,en", "en-GB", "Lamp"),          # q=0: not acceptable
    ("de", "@none", "Lampa"),                # no match: the @none entry
    ("*", "ro", "Lampă"),                    # any language: the first one (ETSI 018_07_03)
    ("de,*;q=0.5", "ro", "Lampă"),
])
def test_lang(lang: str, tag: str, text: str) -> None:
    e = entity(name=NAME)
    assert render(e, lang=lang)["name"] == {"type": "Property", "value": text, "lang": tag}
    assert render(e, lang=lang, format="concise")["name"] == {"value": text, "lang": tag}
    assert render(e, lang=lang, format="keyValues")["name"] == text


def test_lang_in_sub_attributes_multi_instances_and_sys_attrs() -> None:
    e = entity(p={"value": 1, "label": {"languageMap": {"ro": "x", "en": "y"}}},
               n=[{"languageMap": {"en": "a"}, "datasetId": "urn:d:1"},
                  {"languageMap": {"ro": "b"}}])
    out = render(e, lang="en", sys_attrs=True)
    assert out["p"]["label"] == {"type": "Property", "value": "y", "lang": "en", **STAMPS}
    assert [i["value"] for i in out["n"]] == ["a", "b"]
    assert render(e, lang="en", format="keyValues")["n"] == {"dataset": {"urn:d:1": "a",
                                                                         "@none": "b"}}


def test_language_matching_directly() -> None:
    assert language_ranges("fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5") == ["fr-ch", "fr", "en", "*"]
    assert language_ranges("en;q=x,ro;q=2") == []
    street = {"fr": "Grand Place", "nl": "Grote Markt"}  # ETSI 018_07 test data
    for lang in ("fr", "fr-CH,fr", "*", "fr-CH,fr;q=0.9,en;q=0.8,*;q=0.5"):
        assert pick_language(street, lang) == ("fr", "Grand Place")
    assert pick_language({"@none": "x"}, "*") == ("@none", "x")
    assert pick_language({"ro": "a", "en": "b"}, "de") == ("ro", "a")


# -- GeoJSON (clause 4.5.16) ---------------------------------------------------------------------

AREA = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}


def test_geojson() -> None:
    e = entity(location=POINT, p=1, area={"type": "GeoProperty", "value": AREA})
    feature = render_geojson(e, TERMS, RenderOptions(format="keyValues"), CORE + "location")
    assert feature == {"id": ID, "type": "Feature", "geometry": POINT,
                       "properties": {"type": "Lamp", "location": POINT, "p": 1,
                                      "area": AREA}}
    other = render_geojson(e, TERMS, RenderOptions(), D + "area")
    assert other["geometry"] == AREA
    assert other["properties"]["p"] == {"type": "Property", "value": 1}
    assert render_geojson(e, TERMS, RenderOptions(), D + "p")["geometry"] is None
    assert render_geojson(e, TERMS, RenderOptions(), D + "none")["geometry"] is None


def test_geojson_geometry_follows_projection_and_datasets() -> None:
    e = entity(location=[{"type": "GeoProperty", "value": POINT, "datasetId": "urn:d:1"},
                         {"type": "GeoProperty", "value": AREA}])
    loc = CORE + "location"
    assert render_geojson(e, TERMS, RenderOptions(), loc)["geometry"] == AREA  # the default
    one = RenderOptions(dataset_ids=frozenset({"urn:d:1"}))
    assert render_geojson(e, TERMS, one, loc)["geometry"] == POINT
    hidden = RenderOptions(omit=frozenset({loc}))
    feature = render_geojson(e, TERMS, hidden, loc)
    assert feature["geometry"] is None and "location" not in feature["properties"]


def test_render_attribute() -> None:
    instances = entity(p={"value": 1, "unitCode": "C"})["attrs"][D + "p"]
    assert render_attribute(instances, TERMS, RenderOptions(format="concise")) == {
        "value": 1, "unitCode": "C"}


# -- concise is lossless: parse(render(parse(x))) == parse(x) -----------------------------------

NAMES = st.sampled_from(["a", "b", "location", "Lamp", "https://example.org/x", "ex:y"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4) | st.sampled_from(["urn:a:1", "Point", "value", "@none"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "value", "object", "coordinates", "json", "x", "@value",
                         "languageMap", "geometries"]), inner, max_size=3),
    max_leaves=10,
).filter(lambda v: v is not None)
URIS = st.sampled_from(["urn:a:1", "urn:a:2", "http://x.org/y"])
META = st.fixed_dictionaries({}, optional={
    "observedAt": st.just("2026-11-23T10:00:00Z"), "unitCode": st.just("C")})
INSTANCES = st.one_of(
    st.builds(lambda v, m: {"type": "Property", "value": v, **m}, VALUES, META),
    st.builds(lambda v, m: {"type": "GeoProperty", "value": v, **m},
              st.sampled_from([POINT, AREA]), META),
    st.builds(lambda o, t: {"type": "Relationship", "object": o, **t},
              URIS | st.lists(URIS, min_size=1, max_size=2),
              st.fixed_dictionaries({}, optional={"objectType": NAMES})),
    st.builds(lambda m: {"type": "LanguageProperty", "languageMap": m},
              st.dictionaries(st.sampled_from(["en", "ro", "@none"]), st.text(max_size=3),
                              min_size=1)),
    st.builds(lambda v: {"type": "VocabProperty", "vocab": v},
              NAMES | st.lists(NAMES, min_size=1, max_size=2)),
    st.builds(lambda v: {"type": "JsonProperty", "json": v}, VALUES),
    st.builds(lambda v: {"type": "ListProperty", "valueList": v},
              st.lists(VALUES, max_size=3)),
    st.builds(lambda v: {"type": "ListRelationship", "objectList": v},
              st.lists(URIS, max_size=3)),
)


def _with_sub(inst: dict[str, Any], sub: dict[str, Any] | None) -> dict[str, Any]:
    return inst if sub is None else {**inst, "sub": sub}


ATTRIBUTES = st.builds(_with_sub, INSTANCES, st.none() | INSTANCES) | st.lists(
    st.builds(lambda inst, n: {**inst, "datasetId": f"urn:d:{n}"}, INSTANCES,
              st.integers(0, 3)), min_size=2, max_size=3, unique_by=lambda i: i["datasetId"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "https://example.org/x"]), ATTRIBUTES,
                       max_size=3))
def test_concise_and_normalized_read_back_the_same(attrs: dict[str, Any]) -> None:
    try:
        e = parse_entity({"id": ID, "type": "Lamp", **attrs}, TERMS, T0)
    except BadRequestData:
        return  # not every generated value is valid (e.g. JSON-LD null inside a value)
    for fmt in ("normalized", "concise"):
        again = parse_entity(render(e, format=fmt), TERMS, T0)
        assert again == e, fmt
    render(e, format="keyValues")  # never fails on what parse accepted
    render(e, lang="en")
