"""Entities of the privacy tests, in the store's internal form (docs/internals.md), written
straight into a real store with the times the test needs (modifiedAt drives retention)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.store.protocol import Entity, Store

NS = "https://cetate.city/ns/"
SDM = "https://smartdatamodels.org/"
TAXPAYER = NS + "Taxpayer"
OBLIGATION = NS + "TaxObligation"
PAYMENT = NS + "TaxPayment"
CARD = NS + "TransitCard"
VALIDATION = NS + "TicketValidation"  # P90D, contract: erasable
SESSION = NS + "ParkingSession"  # P1Y, contract: erasable
STREETLIGHT = SDM + "dataModel.Streetlighting/Streetlight"  # P10Y
UNCONTRACTED = "https://example.org/Unknown"  # no contract: never purged, erasure refused
P = "3f1c" * 16  # a subject's pseudonym: 64 hex digits, as the adapters' keyed hashes
OTHER = "9a0b" * 16
OLD = "2020-01-01T00:00:00.000Z"
RECENT = "2026-11-30T00:00:00.000Z"
NOW = "2026-12-01T00:00:00Z"


def prop(value: Any) -> list[dict[str, Any]]:
    return [{"type": "Property", "value": value}]


def rel(target: str) -> list[dict[str, Any]]:
    return [{"type": "Relationship", "object": target}]


def entity(entity_id: str, type_iri: str, modified: str = RECENT,
           **attrs: list[dict[str, Any]]) -> Entity:
    return {"id": entity_id, "type": [type_iri], "createdAt": modified, "modifiedAt": modified,
            "attrs": {NS + name: value for name, value in attrs.items()}}


def _writing(new: Entity) -> Callable[[Entity | None], tuple[Entity, None]]:
    return lambda _current: (new, None)


async def put(store: Store, tenant: str, *entities: Entity) -> None:
    for e in entities:
        await store.apply(tenant, e["id"], _writing(e))


def subject_entities(p: str = P, modified: str = RECENT) -> list[Entity]:
    """A taxpayer and a card holder sharing pseudonym `p`, and what refers to them."""
    taxpayer = f"urn:ngsi-ld:Taxpayer:{p}"
    obligation = "urn:ngsi-ld:TaxObligation:craiova:D-1"
    card = f"urn:ngsi-ld:TransitCard:{p}"
    return [
        entity(taxpayer, TAXPAYER, modified, taxIdentifierHash=prop(p)),
        entity(obligation, OBLIGATION, modified, refTaxpayer=rel(taxpayer),
               amountDue=prop(120.5)),
        entity("urn:ngsi-ld:TaxPayment:craiova:T-1", PAYMENT, modified, refTaxpayer=rel(taxpayer),
               refTaxObligation=[{"type": "ListRelationship", "objectList": [obligation]}]),
        entity(card, CARD, modified, cardIdHash=prop(p)),
        entity("urn:ngsi-ld:TicketValidation:rat:1", VALIDATION, modified,
               refTransitCard=rel(card)),
        entity("urn:ngsi-ld:ParkingSession:cv-sms-1", SESSION, modified,
               plateHash=prop({"nested": [p]})),
    ]


def strangers() -> list[Entity]:
    """Entities that do not refer to P."""
    return [entity(f"urn:ngsi-ld:Taxpayer:{OTHER}", TAXPAYER, taxIdentifierHash=prop(OTHER)),
            entity("urn:ngsi-ld:Streetlight:cv-1", STREETLIGHT, powerState=prop("on"),
                   note=prop(P[:20]))]
