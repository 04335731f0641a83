"""Entity changes (clauses 5.6.2-5.6.5, 5.6.17-5.6.19): pure, never changing their inputs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from broker.entities import mutate
from broker.entities.mutate import NotUpdated
from broker.entities.parse import parse_attribute, parse_entity, parse_fragment
from broker.errors import BadRequestData, ResourceNotFound

D = "https://uri.etsi.org/ngsi-ld/default-context/"
T0, T1 = "2026-11-23T10:00:00.000Z", "2026-11-23T11:00:00.000Z"
ID = "urn:ngsi-ld:Streetlight:1"
DS = "urn:ngsi-ld:Dataset:b"
A, B, C = D + "a", D + "b", D + "c"


class FakeTerms:
    def expand(self, term: str) -> str:
        return term if ":" in term else D + term

    def compact(self, iri: str) -> str:
        return iri.removeprefix(D)


TERMS = FakeTerms()


def stored() -> dict[str, Any]:
    return parse_entity({"id": ID, "type": "Streetlight", "scope": "/x",
                         "a": {"value": 1, "unitCode": "C", "acc": {"value": 0.1}},
                         "b": [{"object": "urn:o:1"}, {"object": "urn:o:2", "datasetId": DS}]},
                        TERMS, T0)


def fragment(body: dict[str, Any], **kw: Any) -> Any:
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

def test_append_adds_replaces_and_adds_types() -> None:
    new, result = unchanged(lambda e: mutate.append(
        e, fragment({"type": "Device", "a": 2, "c": 3, "b": {"object": "urn:o:3",
                                                             "datasetId": "urn:d:new"}}),
        T1, no_overwrite=False))
    assert values(new, A) == [2] and values(new, C) == [3]
    assert values(new, B) == ["urn:o:1", "urn:o:2", "urn:o:3"]
    assert new["attrs"][A][0]["createdAt"] == T0 and new["attrs"][A][0]["modifiedAt"] == T1
    assert new["type"] == [D + "Streetlight", D + "Device"]
    assert new["modifiedAt"] == T1 and new["createdAt"] == T0
    assert result.updated == [A, C, B] and result.not_updated == []


def test_append_no_overwrite() -> None:
    new, result = unchanged(lambda e: mutate.append(
        e, fragment({"a": 2, "c": 3, "b": {"object": "urn:o:9", "datasetId": DS}}),
        T1, no_overwrite=True))
    assert values(new, A) == [1] and values(new, C) == [3]
    assert values(new, B) == ["urn:o:1", "urn:o:2"]
    assert result.updated == [C]
    assert [n.attr for n in result.not_updated] == [A, B]
    assert all("exists" in n.reason for n in result.not_updated)


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


def test_update_by_dataset_id() -> None:
    new, result = mutate.update(stored(), fragment({"b": {"object": "urn:o:9",
                                                          "datasetId": DS}}), T1)
    assert values(new, B) == ["urn:o:1", "urn:o:9"] and result.updated == [B]


# -- partial attribute update (5.6.4) ------------------------------------------------------------

def patch(body: Any) -> Any:
    return parse_attribute(A, body, TERMS, T1, partial=True)


def test_partial_update_merges_members() -> None:
    new = unchanged(lambda e: mutate.partial_update(
        e, A, patch({"value": 7, "acc": {"value": 0.2}}), T1))
    inst = new["attrs"][A][0]
    assert inst["value"] == 7 and inst["unitCode"] == "C" and inst["type"] == "Property"
    assert inst[D + "acc"]["value"] == 0.2
    assert inst["createdAt"] == T0 and inst["modifiedAt"] == T1 and new["modifiedAt"] == T1


def test_partial_update_by_dataset_id() -> None:
    body = parse_attribute(B, {"object": "urn:o:7", "datasetId": DS}, TERMS, T1, partial=True)
    new = mutate.partial_update(stored(), B, body, T1)
    assert values(new, B) == ["urn:o:1", "urn:o:7"]


@pytest.mark.parametrize(("attr", "body", "error"), [
    (C, {"value": 1}, ResourceNotFound),
    (B, {"object": "urn:o:1", "datasetId": "urn:d:none"}, ResourceNotFound),
    (A, {"type": "Relationship", "object": "urn:o:1"}, BadRequestData),
    (A, {"object": "urn:o:1"}, BadRequestData),
    (A, {"value": None}, BadRequestData),
])
def test_partial_update_refusals(attr: str, body: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        mutate.partial_update(stored(), attr, parse_attribute(attr, body, TERMS, T1,
                                                              partial=True), T1)


def test_partial_update_checks_geometry_against_stored_kind() -> None:
    e = parse_entity({"id": ID, "type": "T", "location": {"type": "Point",
                                                          "coordinates": [1, 2]}}, TERMS, T0)
    with pytest.raises(BadRequestData):
        mutate.partial_update(e, D + "location", patch({"value": 5}), T1)
    moved = mutate.partial_update(e, D + "location",
                                  patch({"value": {"type": "Point", "coordinates": [3, 4]}}), T1)
    assert moved["attrs"][D + "location"][0]["value"]["coordinates"] == [3, 4]


# -- replace attribute (5.6.19) and delete attribute (5.6.5) ------------------------------------

def test_replace_attribute() -> None:
    instances = parse_attribute(A, {"value": 9}, TERMS, T1)
    new = unchanged(lambda e: mutate.replace_attribute(e, A, instances, T1))
    assert new["attrs"][A] == [{"type": "Property", "value": 9, "createdAt": T0,
                                "modifiedAt": T1}]  # unitCode and sub-attribute gone
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


# -- merge (5.6.17) and replace (5.6.18) ---------------------------------------------------------

def test_merge_with_null_and_sub_attributes() -> None:
    f = fragment({"type": "Device", "b": "urn:ngsi-ld:null", "c": 3,
                  "a": {"value": 2, "acc": "urn:ngsi-ld:null", "prec": {"value": 1}}},
                 allow_null=True)
    new = unchanged(lambda e: mutate.merge(e, f, T1))
    assert B not in new["attrs"] and values(new, C) == [3]
    inst = new["attrs"][A][0]
    assert inst["value"] == 2 and inst["unitCode"] == "C"  # kept: merge, not replace
    assert D + "acc" not in inst and inst[D + "prec"]["value"] == 1
    assert inst["createdAt"] == T0 and inst["modifiedAt"] == T1
    assert new["type"] == [D + "Streetlight", D + "Device"] and new["modifiedAt"] == T1


def test_merge_into_other_kind_replaces() -> None:
    new = mutate.merge(stored(), fragment({"a": {"object": "urn:o:1"}}), T1)
    inst = new["attrs"][A][0]
    assert inst["type"] == "Relationship" and "unitCode" not in inst
    assert inst["createdAt"] == T0


def test_merge_dataset_instance_and_scope() -> None:
    new = mutate.merge(stored(), fragment({"scope": "/y", "b": {"object": "urn:o:5",
                                                                 "datasetId": "urn:d:3"}}), T1)
    assert values(new, B) == ["urn:o:1", "urn:o:2", "urn:o:5"] and new["scope"] == ["/y"]


def test_replace_entity_keeps_identity() -> None:
    replacement = parse_entity({"id": ID, "type": "Other", "c": 1}, TERMS, T1)
    new = unchanged(lambda e: mutate.replace(e, replacement, T1))
    assert new["id"] == ID and new["createdAt"] == T0 and new["modifiedAt"] == T1
    assert new["type"] == [D + "Other"] and list(new["attrs"]) == [C] and "scope" not in new
