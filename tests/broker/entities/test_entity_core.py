"""The pure entity core, tested directly: parse, mutate, render (clauses 4.5, 5.6, 5.7.1)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.entities import mutate
from broker.entities.clock import normalize_datetime
from broker.entities.parse import parse_attribute, parse_entity, parse_fragment, require_uri
from broker.entities.render import RenderOptions, render_entity, render_geojson
from broker.errors import BadRequestData, NgsiError, ResourceNotFound
from broker.ld.termmap import CORE_TERMS as TERMS

T0, T1 = "2026-11-23T10:00:00.000Z", "2026-11-23T11:00:00.000Z"
D = "https://uri.etsi.org/ngsi-ld/default-context/"
ID = "urn:ngsi-ld:Streetlight:1"


def entity(**attrs: Any) -> dict[str, Any]:
    return parse_entity({"id": ID, "type": "Streetlight", **attrs}, TERMS, T0)


def out(e: dict[str, Any], **opts: Any) -> dict[str, Any]:
    return render_entity(e, TERMS, RenderOptions(**opts))


KINDS = {
    "p": {"type": "Property", "value": 21.5, "unitCode": "CEL",
          "observedAt": "2026-11-23T10:00:00.000Z"},
    "r": {"type": "Relationship", "object": "urn:ngsi-ld:Group:1"},
    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [23.8, 44.3]}},
    "name": {"type": "LanguageProperty", "languageMap": {"ro": "Lampă", "en": "Lamp"}},
    "cat": {"type": "VocabProperty", "vocab": "led"},
    "cfg": {"type": "JsonProperty", "json": {"x": [1, None]}},
    "lst": {"type": "ListProperty", "valueList": [1, "a"]},
    "rl": {"type": "ListRelationship", "objectList": ["urn:a:1", "urn:a:2"]},
    "sub": {"type": "Property", "value": 1, "acc": {"type": "Property", "value": 0.1}},
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_normalized_round_trip(name: str) -> None:
    assert out(entity(**{name: KINDS[name]}))[name] == KINDS[name]


def test_internal_form() -> None:
    e = entity(**KINDS)
    assert e["type"] == [D + "Streetlight"]
    assert e["createdAt"] == e["modifiedAt"] == T0
    inst = e["attrs"][D + "cat"][0]
    assert inst["vocab"] == D + "led" and inst["createdAt"] == T0
    assert e["attrs"]["https://uri.etsi.org/ngsi-ld/location"][0]["type"] == "GeoProperty"
    assert D + "acc" in e["attrs"][D + "sub"][0]


def test_concise_input_and_output() -> None:
    concise = {"p": 5, "r": {"object": "urn:x:1"}, "name": {"languageMap": {"ro": "a"}},
               "location": {"type": "Point", "coordinates": [23.8, 44.3]},
               "q": {"value": 1, "unitCode": "MTR"}}
    e = entity(**concise)
    kinds = {k.rsplit("/", 1)[-1]: v[0]["type"] for k, v in e["attrs"].items()}
    assert kinds == {"p": "Property", "r": "Relationship", "name": "LanguageProperty",
                     "location": "GeoProperty", "q": "Property"}
    assert out(e, format="concise") == {"id": ID, "type": "Streetlight", **concise}


def test_key_values() -> None:
    e = entity(**KINDS)
    kv = out(e, format="keyValues")
    assert kv["p"] == 21.5 and kv["r"] == "urn:ngsi-ld:Group:1" and kv["cat"] == "led"
    # clause 4.5.18: a LanguageProperty simplifies to {"languageMap": ...}
    assert kv["name"] == {"languageMap": {"ro": "Lampă", "en": "Lamp"}}
    assert kv["rl"] == ["urn:a:1", "urn:a:2"]
    again = parse_entity({"id": ID, "type": "Streetlight", "p": 1,
                          "location": {"type": "Point", "coordinates": [1, 2]}},
                         TERMS, T0, key_values=True)
    assert again["attrs"]["https://uri.etsi.org/ngsi-ld/location"][0]["type"] == "GeoProperty"


def test_multi_instance_and_key_values_default() -> None:
    e = entity(p=[{"type": "Property", "value": 1, "datasetId": "urn:ds:a"},
                  {"type": "Property", "value": 2}])
    assert isinstance(out(e)["p"], list)
    # clause 4.5.4: a simplified multi-attribute maps each datasetId ("@none" default) to its value
    assert out(e, format="keyValues")["p"] == {"dataset": {"urn:ds:a": 1, "@none": 2}}


def test_sys_attrs_and_pick_omit() -> None:
    e = entity(**KINDS)
    sys = out(e, sys_attrs=True)
    assert sys["createdAt"] == T0 and sys["p"]["modifiedAt"] == T0
    assert set(out(e, pick=frozenset({"id", D + "p"}))) == {"id", "p"}
    assert "type" not in out(e, omit=frozenset({"type"}))


def test_lang() -> None:
    e = entity(name=KINDS["name"])
    assert out(e, lang="ro")["name"] == {"type": "Property", "value": "Lampă", "lang": "ro"}
    assert out(e, lang="de,en;q=0.5")["name"]["value"] == "Lamp"
    # "*" matches any language: the first entry is returned as a Property
    assert out(e, lang="*")["name"] == {"type": "Property", "value": "Lampă", "lang": "ro"}
    assert out(e, lang="ro", format="keyValues")["name"] == "Lampă"


def test_geojson() -> None:
    feature = render_geojson(entity(**KINDS), TERMS, RenderOptions(),
                             "https://uri.etsi.org/ngsi-ld/location")
    assert feature["geometry"] == KINDS["location"]["value"]
    assert feature["properties"]["type"] == "Streetlight" and "id" not in feature["properties"]
    none = render_geojson(entity(p=1), TERMS, RenderOptions(), D + "missing")
    assert none["geometry"] is None


DEEP: Any = 1
for _ in range(40):
    DEEP = [DEEP]

BAD: list[tuple[str, Any]] = [
    ("not an object", [1]),
    ("id missing", {"type": "T"}),
    ("id not a URI", {"id": "lamp 1", "type": "T"}),
    ("type missing", {"id": ID}),
    ("type empty", {"id": ID, "type": []}),
    ("type a number", {"id": ID, "type": 3}),
    ("id and @id", {"id": ID, "@id": ID, "type": "T"}),
    ("@context as attribute", {"id": ID, "type": "T", "@context": {}}),
    ("@type-like name", {"id": ID, "type": "T", "@foo": 1}),
    ("forbidden char", {"id": ID, "type": "T", "a(b)": 1}),
    ("null value", {"id": ID, "type": "T", "p": None}),
    ("property without value", {"id": ID, "type": "T", "p": {"type": "Property"}}),
    ("object not a URI", {"id": ID, "type": "T", "r": {"type": "Relationship", "object": "x"}}),
    ("value on relationship", {"id": ID, "type": "T",
                               "r": {"type": "Relationship", "object": "urn:a:1", "value": 1}}),
    ("unknown type", {"id": ID, "type": "T", "p": {"type": "Banana", "value": 1}}),
    ("bad geometry", {"id": ID, "type": "T",
                      "location": {"type": "GeoProperty", "value": {"type": "Point",
                                                                    "coordinates": [200, 0]}}}),
    ("open ring", {"id": ID, "type": "T", "location": {"type": "GeoProperty", "value": {
        "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}}}),
    ("bad languageMap", {"id": ID, "type": "T",
                         "n": {"type": "LanguageProperty", "languageMap": {"ro": 1}}}),
    ("bad datasetId", {"id": ID, "type": "T",
                       "p": {"type": "Property", "value": 1, "datasetId": "x"}}),
    ("duplicate datasetId", {"id": ID, "type": "T", "p": [
        {"type": "Property", "value": 1}, {"type": "Property", "value": 2}]}),
    ("bad observedAt", {"id": ID, "type": "T",
                        "p": {"type": "Property", "value": 1, "observedAt": "yesterday"}}),
    ("objectType on property", {"id": ID, "type": "T",
                                "p": {"type": "Property", "value": 1, "objectType": "X"}}),
    ("bad scope", {"id": ID, "type": "T", "scope": "Craiova"}),
    ("too deep", {"id": ID, "type": "T", "p": {"type": "Property", "value": DEEP}}),
]


@pytest.mark.parametrize(("why", "body"), BAD, ids=[b[0] for b in BAD])
def test_validation_failures(why: str, body: Any) -> None:
    with pytest.raises(BadRequestData):
        parse_entity(body, TERMS, T0)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=20))
def test_parse_raises_only_ngsi_errors(body: Any) -> None:
    for candidate in (body, {"id": ID, "type": "T", "a": body}, {"id": ID, "type": "T",
                                                                 **(body if isinstance(body, dict)
                                                                    else {})}):
        with contextlib.suppress(NgsiError):
            parse_entity(candidate, TERMS, T0)


def frag(body: dict[str, Any], **kw: Any) -> Any:
    return parse_fragment(body, TERMS, T1, entity_id=ID, **kw)


def test_append_overwrite_and_no_overwrite() -> None:
    e = entity(p=1)
    new, result = mutate.append(e, frag({"p": 2, "w": 3}), T1, no_overwrite=True)
    assert result.updated == [D + "w"] and [n.attr for n in result.not_updated] == [D + "p"]
    assert out(new, format="keyValues") == {"id": ID, "type": "Streetlight", "p": 1, "w": 3}
    new, result = mutate.append(e, frag({"p": 2}), T1, no_overwrite=False)
    inst = new["attrs"][D + "p"][0]
    assert inst["value"] == 2 and inst["createdAt"] == T0 and inst["modifiedAt"] == T1
    assert e["attrs"][D + "p"][0]["value"] == 1  # the input is never changed in place
    assert new["modifiedAt"] == T1


def test_update_only_existing() -> None:
    new, result = mutate.update(entity(p=1), frag({"p": 5, "zz": 1}), T1)
    assert result.updated == [D + "p"]
    assert result.not_updated[0].attr == D + "zz"
    assert D + "zz" not in new["attrs"]


def test_partial_update_keeps_other_members() -> None:
    e = entity(p={"type": "Property", "value": 1, "unitCode": "MTR"})
    patch = parse_attribute(D + "p", {"value": 7}, TERMS, T1, partial=True)
    new = mutate.partial_update(e, D + "p", patch, T1)
    assert new["attrs"][D + "p"][0] | {} == {"type": "Property", "value": 7, "unitCode": "MTR",
                                             "createdAt": T0, "modifiedAt": T1}
    with pytest.raises(ResourceNotFound):
        mutate.partial_update(e, D + "nope", patch, T1)
    wrong = parse_attribute(D + "p", {"object": "urn:a:1"}, TERMS, T1, partial=True)
    with pytest.raises(BadRequestData):
        mutate.partial_update(e, D + "p", wrong, T1)


def test_replace_and_delete_attribute() -> None:
    e = entity(p=[{"type": "Property", "value": 1, "unitCode": "MTR"},
                  {"type": "Property", "value": 2, "datasetId": "urn:ds:b"}])
    new = mutate.replace_attribute(
        e, D + "p", parse_attribute(D + "p", {"type": "Property", "value": 9}, TERMS, T1), T1)
    assert [i.get("unitCode") for i in new["attrs"][D + "p"]] == [None, None]
    one = mutate.delete_attribute(e, D + "p", dataset_id="urn:ds:b", delete_all=False, now=T1)
    assert len(one["attrs"][D + "p"]) == 1
    gone = mutate.delete_attribute(e, D + "p", dataset_id=None, delete_all=True, now=T1)
    assert D + "p" not in gone["attrs"]
    with pytest.raises(ResourceNotFound):
        mutate.delete_attribute(e, D + "p", dataset_id="urn:ds:zz", delete_all=False, now=T1)
    with pytest.raises(ResourceNotFound):
        mutate.replace_attribute(e, D + "nope", [], T1)


def test_merge_with_null() -> None:
    e = entity(p={"type": "Property", "value": 1, "acc": {"type": "Property", "value": 0.1}},
               q=2, r={"type": "Relationship", "object": "urn:a:1"})
    f = frag({"p": {"value": 5, "acc": "urn:ngsi-ld:null"}, "q": "urn:ngsi-ld:null", "n": 3,
              "type": "Lamp"}, allow_null=True)
    new = mutate.merge(e, f, T1)
    assert out(new) == {"id": ID, "type": ["Streetlight", "Lamp"],
                        "p": {"type": "Property", "value": 5},
                        "r": {"type": "Relationship", "object": "urn:a:1"},
                        "n": {"type": "Property", "value": 3}}


def test_replace_entity_keeps_identity() -> None:
    e = entity(p=1)
    new = mutate.replace(e, parse_entity({"id": ID, "type": "Other", "z": 1}, TERMS, T1), T1)
    assert new["createdAt"] == T0 and new["modifiedAt"] == T1
    assert set(new["attrs"]) == {D + "z"}


def test_fragment_id_must_match() -> None:
    with pytest.raises(BadRequestData):
        frag({"id": "urn:other:1", "p": 1})


@pytest.mark.parametrize(("text", "iso"), [
    ("2026-11-23T12:00:00+02:00", "2026-11-23T10:00:00.000Z"),
    ("2026-11-23T10:00:00Z", "2026-11-23T10:00:00.000Z"),
    ("2026-11-23T10:00:00.123456", "2026-11-23T10:00:00.123Z"),
])
def test_datetimes(text: str, iso: str) -> None:
    assert normalize_datetime(text) == iso


@pytest.mark.parametrize("value", ["urn:ngsi-ld:X:1", "http://example.org/a", "urn:a:b"])
def test_uris(value: str) -> None:
    assert require_uri(value, "id") == value


@pytest.mark.parametrize("value", ["abc", "urn:", "lamp 1", "", 5, None, "a:<b>"])
def test_not_uris(value: Any) -> None:
    with pytest.raises(BadRequestData):
        require_uri(value, "id")
