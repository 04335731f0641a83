"""Rendering (clauses 4.5.x, 4.15, 4.5.16): normalized, concise, keyValues, lang, pick/omit,
sysAttrs and GeoJSON, as round trips through the internal form."""

from __future__ import annotations

from typing import Any

import pytest

from broker.entities.parse import parse_entity
from broker.entities.render import RenderOptions, render_entity, render_geojson

CORE = "https://uri.etsi.org/ngsi-ld/"
D = CORE + "default-context/"
T0 = "2026-11-23T10:00:00.000Z"
ID = "urn:ngsi-ld:Streetlight:1"
POINT = {"type": "Point", "coordinates": [23.8, 44.3]}


class FakeTerms:
    """Core terms plus a dict; unknown terms go to the default context."""

    def __init__(self, user: dict[str, str]) -> None:
        core = ("location", "observationSpace", "operationSpace")
        self.user = {t: CORE + t for t in core} | user
        self.back = {v: k for k, v in self.user.items()}

    def expand(self, term: str) -> str:
        return term if ":" in term else self.user.get(term, D + term)

    def compact(self, iri: str) -> str:
        return self.back.get(iri, iri.removeprefix(D))


TERMS = FakeTerms({"Lamp": "https://example.org/Lamp", "led": "https://example.org/led"})

# name: (normalized, concise, keyValues)
KINDS: dict[str, tuple[Any, Any, Any]] = {
    "p": ({"type": "Property", "value": 21.5}, 21.5, 21.5),
    "pm": ({"type": "Property", "value": {"a": 1}, "unitCode": "CEL", "observedAt": T0},
           {"value": {"a": 1}, "unitCode": "CEL", "observedAt": T0}, {"a": 1}),
    "r": ({"type": "Relationship", "object": "urn:ngsi-ld:Group:1", "objectType": "Group"},
          {"object": "urn:ngsi-ld:Group:1", "objectType": "Group"}, "urn:ngsi-ld:Group:1"),
    "location": ({"type": "GeoProperty", "value": POINT}, POINT, POINT),
    "observationSpace": ({"type": "GeoProperty", "value": POINT, "observedAt": T0},
                         {"value": POINT, "observedAt": T0}, POINT),
    "name": ({"type": "LanguageProperty", "languageMap": {"ro": "Lampă", "en": "Lamp"}},
             {"languageMap": {"ro": "Lampă", "en": "Lamp"}}, {"ro": "Lampă", "en": "Lamp"}),
    "cat": ({"type": "VocabProperty", "vocab": "led"}, {"vocab": "led"}, "led"),
    "cats": ({"type": "VocabProperty", "vocab": ["led", "x"]}, {"vocab": ["led", "x"]},
             ["led", "x"]),
    "cfg": ({"type": "JsonProperty", "json": {"x": [1, None]}}, {"json": {"x": [1, None]}},
            {"x": [1, None]}),
    "lst": ({"type": "ListProperty", "valueList": [1, "a"]}, {"valueList": [1, "a"]}, [1, "a"]),
    "rl": ({"type": "ListRelationship", "objectList": ["urn:a:1"]}, {"objectList": ["urn:a:1"]},
           ["urn:a:1"]),
    "sub": ({"type": "Property", "value": 1, "acc": {"type": "Property", "value": 0.1},
             "by": {"type": "Relationship", "object": "urn:s:1"}},
            {"value": 1, "acc": 0.1, "by": {"object": "urn:s:1"}}, 1),
    "multi": ([{"type": "Property", "value": 1, "datasetId": "urn:d:1"},
               {"type": "Property", "value": 2}],
              [{"value": 1, "datasetId": "urn:d:1"}, {"value": 2}], 2),
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


def test_types_and_scope() -> None:
    e = parse_entity({"id": ID, "type": ["Lamp", "Device"], "scope": ["/a", "/b"]}, TERMS, T0)
    assert render(e) == {"id": ID, "type": ["Lamp", "Device"], "scope": ["/a", "/b"]}
    one = parse_entity({"id": ID, "type": "Lamp", "scope": "/a"}, TERMS, T0)
    assert render(one)["scope"] == "/a"
    assert e["type"] == ["https://example.org/Lamp", D + "Device"]


def test_key_values_multi_instance_without_default_takes_first() -> None:
    e = entity(m=[{"value": 1, "datasetId": "urn:d:1"}, {"value": 2, "datasetId": "urn:d:2"}])
    assert render(e, format="keyValues")["m"] == 1


def test_sys_attrs() -> None:
    e = entity(p={"value": 1, "acc": {"value": 2}})
    stamps = {"createdAt": T0, "modifiedAt": T0}
    assert render(e, sys_attrs=True) == {
        "id": ID, "type": "Lamp", **stamps,
        "p": {"type": "Property", "value": 1, **stamps,
              "acc": {"type": "Property", "value": 2, **stamps}}}
    concise = render(e, format="concise", sys_attrs=True)
    assert concise["createdAt"] == T0 and concise["p"]["acc"] == {"value": 2, **stamps}
    assert render(e, format="keyValues", sys_attrs=True) == {"id": ID, "type": "Lamp", "p": 1}


@pytest.mark.parametrize(("pick", "omit", "keys"), [
    (None, None, ["a", "b", "id", "type"]),
    ({"id", D + "a"}, None, ["a", "id"]),
    (None, {"type", D + "b"}, ["a", "id"]),
    ({"type"}, None, ["type"]),
])
def test_pick_and_omit(pick: set[str] | None, omit: set[str] | None, keys: list[str]) -> None:
    opts = RenderOptions(pick=None if pick is None else frozenset(pick),
                         omit=None if omit is None else frozenset(omit))
    assert sorted(render_entity(entity(a=1, b=2), TERMS, opts)) == keys


NAME = {"type": "LanguageProperty", "languageMap": {"ro": "Lampă", "en-GB": "Lamp",
                                                    "@none": "Lampa"}}


@pytest.mark.parametrize(("lang", "tag", "text"), [
    ("ro", "ro", "Lampă"),
    ("en", "en-GB", "Lamp"),           # a prefix matches a more specific tag
    ("de,en;q=0.5", "en-GB", "Lamp"),
    ("fr;q=0.1,ro;q=0.9", "ro", "Lampă"),
    ("de", "@none", "Lampa"),          # no match: the @none entry
])
def test_lang(lang: str, tag: str, text: str) -> None:
    e = entity(name=NAME)
    assert render(e, lang=lang)["name"] == {"type": "Property", "value": text, "lang": tag}
    assert render(e, lang=lang, format="concise")["name"] == {"value": text, "lang": tag}
    assert render(e, lang=lang, format="keyValues")["name"] == text


def test_lang_star_keeps_map_and_fallback_is_first_entry() -> None:
    assert render(entity(name=NAME), lang="*")["name"] == NAME
    e = entity(name={"languageMap": {"ro": "Lampă", "en": "Lamp"}})
    assert render(e, lang="de", format="keyValues")["name"] == "Lampă"


def test_geojson() -> None:
    e = entity(location=POINT, p=1, area={"type": "GeoProperty", "value": {
        "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}})
    feature = render_geojson(e, TERMS, RenderOptions(format="keyValues"), CORE + "location")
    assert feature == {"id": ID, "type": "Feature", "geometry": POINT,
                       "properties": {"type": "Lamp", "location": POINT, "p": 1,
                                      "area": e["attrs"][D + "area"][0]["value"]}}
    other = render_geojson(e, TERMS, RenderOptions(), D + "area")
    assert other["geometry"]["type"] == "Polygon"
    assert other["properties"]["p"] == {"type": "Property", "value": 1}
    assert render_geojson(e, TERMS, RenderOptions(), D + "p")["geometry"] is None
    assert render_geojson(e, TERMS, RenderOptions(), D + "none")["geometry"] is None
