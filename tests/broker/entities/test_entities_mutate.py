"""Entity changes (clauses 5.6.2-5.6.5, 5.6.17-5.6.19, 5.5.8, 5.5.12): pure, never changing
their inputs, stamping what changed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from broker.entities import mutate
from broker.entities.kinds import NULL
from broker.entities.mutate import NotUpdated, merge_patch
from broker.entities.parse import Fragment, parse_attribute, parse_entity, parse_fragment
from broker.errors import BadRequestData, ResourceNotFound
from tests.broker.entities.test_entities_parse import CORE, TERMS, D

T0, T1 = "2026-11-23T10:00:00.000Z", "2026-11-23T11:00:00.000Z"
ID = "urn:ngsi-ld:Streetlight:1"
DS, DS2 = "urn:ngsi-ld:Dataset:b", "urn:ngsi-ld:Dataset:c"
A, B, C, N, J = D + "a", D + "b", D + "c", D + "name", D + "cfg"


def stored() -> dict[str, Any]:
    return parse_entity({
        "id": ID, "type": "Streetlight", "scope": "/x",
        "a": {"value": {"street": "Unirii", "no": 1}, "unitCode": "C",
              "acc": {"value": 0.1}, "src": {"object": "urn:s:1"}},
        "b": [{"object": "urn:o:1"}, {"object": "urn:o:2", "datasetId": DS}],
        "name": {"languageMap": {"ro": "Lampă", "en": "Lamp"}},
        "cfg": {"json": {"k": 1, "deep": {"x": 1}}},
    }, TERMS, T0)


def fragment(body: dict[str, Any], **kw: Any) -> Fragment:
    return parse_fragment(body, TERMS, T1, entity_id=ID, **kw)


def unchanged(call: Any) -> Any:
    """Run `call` on a stored entity and check the stored entity was not touched."""
    entity = stored()
    before = copy.deepcopy(entity)
    result = call(entity)
    assert entity == before
    return result


def values(entity: dict[str, Any], iri: str) -> list[Any]:
    return [i.get("value", i.get("object")) for i in entity["attrs"][iri]]


# -- append (5.6.3) -----------------------------------------------------------------------------

def test_append_adds_replaces_and_adds_types_and_scope() -> None:
    new, result = unchanged(lambda e: mutate.append(
        e, fragment({"type": "Device", "scope": "/y", "a": 2, "c": 3,
                     "b": {"object": "urn:o:3", "datasetId": DS2}}),
        T1, no_overwrite=False))
    assert values(new, A) == [2] and values(new, C) == [3]
    assert values(new, B) == ["urn:o:1", "urn:o:2", "urn:o:3"]
    assert new["attrs"][A] == [{"type": "Property", "value": 2, "createdAt": T0,
                                "modifiedAt": T1}]  # overwritten whole, creation kept
    assert new["attrs"][B][0] is stored_instance(new, B, 0)  # untouched instances stay
    assert new["type"] == [D + "Streetlight", D + "Device"] and new["scope"] == ["/x", "/y"]
    assert new["modifiedAt"] == T1 and new["createdAt"] == T0
    assert result.updated == [A, C, B] and result.not_updated == []


def stored_instance(entity: dict[str, Any], iri: str, index: int) -> Any:
    return entity["attrs"][iri][index]


def test_append_no_overwrite() -> None:
    new, result = unchanged(lambda e: mutate.append(
        e, fragment({"a": 2, "c": 3, "b": {"object": "urn:o:9", "datasetId": DS}}),
        T1, no_overwrite=True))
    assert values(new, A) == [{"street": "Unirii", "no": 1}] and values(new, C) == [3]
    assert values(new, B) == ["urn:o:1", "urn:o:2"]
    assert result.updated == [C]
    assert result.not_updated == [
        NotUpdated(A, "attribute exists and noOverwrite was requested"),
        NotUpdated(B, "attribute exists and noOverwrite was requested")]


def test_append_stores_raw_json_verbatim() -> None:
    new, _ = mutate.append(stored(), fragment({"c": {"json": {"k": NULL}}}), T1,
                           no_overwrite=False)
    assert new["attrs"][C][0]["json"] == {"k": NULL}  # raw JSON is never interpreted


def test_nothing_to_do_leaves_the_entity_as_it_was() -> None:
    entity = stored()
    new, result = mutate.append(entity, fragment({"a": 5}), T1, no_overwrite=True)
    assert new is entity and result.updated == []
    new, result = mutate.update(entity, fragment({"zz": 1}), T1)
    assert new is entity and new["modifiedAt"] == T0


# -- update (5.6.2) ------------------------------------------------------------------------------

def test_update_only_existing_instances() -> None:
    new, result = unchanged(lambda e: mutate.update(
        e, fragment({"a": 5, "c": 1, "b": {"object": "urn:o:9", "datasetId": "urn:d:none"}}),
        T1))
    assert values(new, A) == [5] and C not in new["attrs"]
    assert values(new, B) == ["urn:o:1", "urn:o:2"]
    assert result.updated == [A]
    assert result.not_updated == [NotUpdated(C, "attribute does not exist"),
                                  NotUpdated(B, "no instance with that datasetId to update")]
    assert new["attrs"][A][0]["createdAt"] == T0 and new["attrs"][A][0]["modifiedAt"] == T1


def test_update_by_dataset_id_scope_and_deletion() -> None:
    new, result = mutate.update(stored(), fragment({"b": {"object": "urn:o:9",
                                                          "datasetId": DS},
                                                    "scope": ["/z"]}), T1)
    assert values(new, B) == ["urn:o:1", "urn:o:9"] and result.updated == [B]
    assert new["scope"] == ["/z"]
    # A fragment parsed with nulls deletes through update too, and reports what it could not.
    new, result = mutate.update(stored(), fragment({"b": NULL, "c": NULL}, allow_null=True), T1)
    assert values(new, B) == ["urn:o:2"] and result.updated == [B]
    assert result.not_updated == [NotUpdated(C, "attribute does not exist")]


# -- partial attribute update (5.6.4, 5.5.8) -----------------------------------------------------

def patch(body: Any, attr: str = A) -> Any:
    return parse_attribute(attr, body, TERMS, T1, partial=True)


def test_partial_update_replaces_given_members() -> None:
    new = unchanged(lambda e: mutate.partial_update(
        e, A, patch({"value": {"street": "Noua"}, "acc": {"value": 0.2}, "src": NULL,
                     "unitCode": NULL, "observedAt": "2026-11-23T11:00:00Z"}), T1))
    inst = new["attrs"][A][0]
    assert inst == {
        "type": "Property", "value": {"street": "Noua"},  # replaced, not merged (5.5.8)
        "observedAt": T1, "createdAt": T0, "modifiedAt": T1,
        D + "acc": {"type": "Property", "value": 0.2, "createdAt": T0, "modifiedAt": T1},
    }
    assert new["modifiedAt"] == T1


def test_partial_update_by_dataset_id() -> None:
    new = mutate.partial_update(stored(), B, patch({"object": "urn:o:7", "datasetId": DS}, B),
                                T1)
    assert values(new, B) == ["urn:o:1", "urn:o:7"]


@pytest.mark.parametrize(("body", "left"), [
    ({"value": NULL}, ["urn:o:2"]),
    ({"object": NULL, "datasetId": DS}, ["urn:o:1"]),
])
def test_partial_update_null_deletes_the_instance(body: Any, left: list[str]) -> None:
    new = unchanged(lambda e: mutate.partial_update(e, B, patch(body, B), T1))
    assert values(new, B) == left


def test_partial_update_deleting_the_last_instance_drops_the_attribute() -> None:
    new = mutate.partial_update(stored(), A, patch({"value": NULL}), T1)
    assert A not in new["attrs"]


@pytest.mark.parametrize(("attr", "body", "error"), [
    (C, {"value": 1}, ResourceNotFound),
    (B, {"object": "urn:o:1", "datasetId": "urn:d:none"}, ResourceNotFound),
    (C, {"value": NULL}, ResourceNotFound),
    (A, {"type": "Relationship", "object": "urn:o:1"}, BadRequestData),
    (A, {"object": "urn:o:1"}, BadRequestData),
    (A, {"objectType": "X"}, BadRequestData),
    (B, {"unitCode": "C"}, BadRequestData),
    (N, {"value": "x"}, BadRequestData),
    (CORE + "location", {"value": 5}, BadRequestData),
])
def test_partial_update_refusals(attr: str, body: Any, error: type[Exception]) -> None:
    entity = parse_entity({"id": ID, "type": "T", "location": {"type": "Point",
                                                               "coordinates": [1, 2]}},
                          TERMS, T0)
    entity["attrs"].update(stored()["attrs"])
    with pytest.raises(error):
        mutate.partial_update(entity, attr, patch(body, attr), T1)


def test_partial_update_checks_a_bare_value_against_the_stored_kind() -> None:
    e = parse_entity({"id": ID, "type": "T", "area": {"type": "Point",
                                                      "coordinates": [1, 2]}}, TERMS, T0)
    moved = mutate.partial_update(e, D + "area",
                                  patch({"value": {"type": "Point", "coordinates": [3, 4]}}), T1)
    assert moved["attrs"][D + "area"][0]["value"]["coordinates"] == [3, 4]
    with pytest.raises(BadRequestData, match="position"):
        mutate.partial_update(e, D + "area", patch({"value": {"type": "Point",
                                                              "coordinates": [300, 4]}}), T1)


# -- replace attribute (5.6.19) and delete attribute (5.6.5) ------------------------------------

def test_replace_attribute() -> None:
    instances = parse_attribute(A, {"value": 9}, TERMS, T1)
    new = unchanged(lambda e: mutate.replace_attribute(e, A, instances, T1))
    assert new["attrs"][A] == [{"type": "Property", "value": 9, "createdAt": T0,
                                "modifiedAt": T1}]  # unitCode and sub-attributes gone
    added = mutate.replace_attribute(stored(), B, parse_attribute(
        B, {"object": "urn:o:5", "datasetId": DS2}, TERMS, T1), T1)
    assert values(added, B) == ["urn:o:1", "urn:o:2", "urn:o:5"]
    with pytest.raises(ResourceNotFound):
        mutate.replace_attribute(stored(), C, instances, T1)


@pytest.mark.parametrize(("dataset_id", "delete_all", "left"), [
    (None, False, ["urn:o:2"]),
    (DS, False, ["urn:o:1"]),
    (None, True, None),
])
def test_delete_attribute(dataset_id: str | None, delete_all: bool, left: Any) -> None:
    new = unchanged(lambda e: mutate.delete_attribute(e, B, dataset_id=dataset_id,
                                                      delete_all=delete_all, now=T1))
    assert (values(new, B) if B in new["attrs"] else None) == left
    assert new["modifiedAt"] == T1


def test_deleting_the_last_instance_drops_the_attribute() -> None:
    new = mutate.delete_attribute(stored(), A, dataset_id=None, delete_all=False, now=T1)
    assert A not in new["attrs"]


@pytest.mark.parametrize(("attr", "dataset_id", "delete_all"), [
    (C, None, False), (C, None, True), (A, DS, False)])
def test_delete_missing_attribute(attr: str, dataset_id: str | None, delete_all: bool) -> None:
    with pytest.raises(ResourceNotFound):
        mutate.delete_attribute(stored(), attr, dataset_id=dataset_id, delete_all=delete_all,
                                now=T1)


# -- merge (5.6.17, 5.5.12) ----------------------------------------------------------------------

def merged(body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = unchanged(
        lambda e: mutate.merge(e, fragment(body, allow_null=True), T1))
    return result


def test_merge_members_and_sub_attributes() -> None:
    new = merged({"type": "Device", "c": 3,
                  "a": {"value": {"no": 2, "street": NULL, "extra": {"k": NULL, "j": 1}},
                        "acc": NULL, "prec": {"value": 1}, "src": {"object": "urn:s:2"}}})
    inst = new["attrs"][A][0]
    assert inst == {
        "type": "Property", "value": {"no": 2, "extra": {"j": 1}},  # merged key by key
        "unitCode": "C", "createdAt": T0, "modifiedAt": T1,  # kept: merge, not replace
        D + "prec": {"type": "Property", "value": 1, "createdAt": T1, "modifiedAt": T1},
        D + "src": {"type": "Relationship", "object": "urn:s:2", "createdAt": T0,
                    "modifiedAt": T1},
    }
    assert values(new, C) == [3]
    assert new["type"] == [D + "Streetlight", D + "Device"] and new["modifiedAt"] == T1


@pytest.mark.parametrize(("body", "left"), [
    ({"b": NULL}, ["urn:o:2"]),  # the default instance only (clause 4.5.5)
    ({"b": {"object": NULL, "datasetId": DS}}, ["urn:o:1"]),
    ({"b": [{"object": NULL}, {"object": NULL, "datasetId": DS}]}, None),
    ({"b": {"object": NULL, "datasetId": "urn:d:none"}}, ["urn:o:1", "urn:o:2"]),
])
def test_merge_null_deletes_instances(body: dict[str, Any], left: Any) -> None:
    new = merged(body)
    assert (values(new, B) if B in new["attrs"] else None) == left


def test_merge_language_map_and_json() -> None:
    new = merged({"name": {"languageMap": {"en": NULL, "de": "Lampe"}},
                  "cfg": {"json": {"k": NULL, "deep": {"y": 2}}}})
    assert new["attrs"][N][0]["languageMap"] == {"ro": "Lampă", "de": "Lampe"}
    assert new["attrs"][J][0]["json"] == {"deep": {"x": 1, "y": 2}}
    gone = merged({"name": {"languageMap": {"@none": NULL}}})
    assert N not in gone["attrs"]
    emptied = merged({"name": {"languageMap": {"en": NULL, "ro": NULL}}})
    assert N not in emptied["attrs"]


def test_merge_into_another_kind_replaces() -> None:
    new = merged({"a": {"object": "urn:o:1"}})
    assert new["attrs"][A] == [{"type": "Relationship", "object": "urn:o:1", "createdAt": T0,
                                "modifiedAt": T1}]


def test_merge_new_attribute_drops_deletion_markers() -> None:
    new = merged({"c": {"value": {"k": 1, "z": NULL}, "unitCode": NULL, "s": NULL}})
    assert new["attrs"][C] == [{"type": "Property", "value": {"k": 1}, "createdAt": T1,
                                "modifiedAt": T1}]


def test_merge_scope() -> None:
    assert merged({"scope": "/y"})["scope"] == ["/y"]
    assert "scope" not in merged({"scope": NULL})


@pytest.mark.parametrize(("target", "patch_", "result"), [
    ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
    ({"a": 1, "b": 2}, {"b": NULL}, {"a": 1}),
    ({"a": {"x": 1}}, {"a": {"y": 2}}, {"a": {"x": 1, "y": 2}}),
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),  # arrays are replaced
    ({"a": 1}, 5, 5),
    (5, {"a": 1, "b": NULL}, {"a": 1}),
    (None, {"a": {"b": NULL}}, {"a": {}}),
])
def test_merge_patch(target: Any, patch_: Any, result: Any) -> None:
    assert merge_patch(target, patch_) == result


# -- replace entity (5.6.18) ---------------------------------------------------------------------

def test_replace_entity_keeps_identity() -> None:
    replacement = parse_entity({"id": ID, "type": "Other", "c": 1}, TERMS, T1)
    new = unchanged(lambda e: mutate.replace(e, replacement, T1))
    assert new == {"id": ID, "type": [D + "Other"], "createdAt": T0, "modifiedAt": T1,
                   "attrs": {C: [{"type": "Property", "value": 1, "createdAt": T1,
                                  "modifiedAt": T1}]}}
