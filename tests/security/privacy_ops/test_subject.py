"""Data-subject requests over a real store: what refers to a pseudonym (by id, by reference at
any depth), who received it (from audit entries), and erasure by lawful basis (art. 17(3)(b)
keeps taxes)."""

from __future__ import annotations

from typing import Any

import pytest

from broker.store.protocol import EntityQuery, Store
from security.audit.log import EntryQuery
from security.privacy.subject import (
    SubjectError,
    check_subject,
    discloses,
    erase,
    erase_document,
    export_document,
    find,
    lawful_bases,
    lawful_basis_of,
    recipients_of,
    refers,
)
from tests.security.privacy_ops.kit import (
    CARD,
    OTHER,
    SESSION,
    TAXPAYER,
    UNCONTRACTED,
    VALIDATION,
    P,
    entity,
    prop,
    put,
    rel,
    strangers,
    subject_entities,
)

SUBJECT_IDS = {e["id"] for e in subject_entities()}


# -- pure ---------------------------------------------------------------------------------------

def test_refers_by_id_value_urn_and_depth() -> None:
    assert refers(entity(f"urn:ngsi-ld:Taxpayer:{P}", TAXPAYER), P)
    assert refers(entity("urn:x", SESSION, plateHash=prop(P)), P)
    assert refers(entity("urn:x", VALIDATION, refTransitCard=rel(f"urn:ngsi-ld:TransitCard:{P}")),
                  P)
    assert refers(entity("urn:x", SESSION, data=prop({"a": [{"b": P}]})), P)
    sub = [{"type": "Property", "value": 1, "https://x/by": [{"type": "Property", "value": P}]}]
    assert refers(entity("urn:x", SESSION, reading=sub), P)
    # neither a prefix of it nor another pseudonym nor a URN that merely contains it
    assert not refers(entity("urn:x", SESSION, plateHash=prop(P[:40])), P)
    assert not refers(entity("urn:x", SESSION, plateHash=prop(OTHER)), P)
    assert not refers(entity("urn:x", SESSION, ref=rel(f"urn:ngsi-ld:X:{P}:more")), P)
    assert refers(entity("urn:x", SESSION, ref=rel(f"urn:ngsi-ld:X:{P}:more")), P,
                  frozenset({f"urn:ngsi-ld:X:{P}:more"}))


def test_subject_must_look_like_a_pseudonym() -> None:
    assert check_subject(f" {P} ") == P
    for bad in (None, "", "   ", "abc", 42, "x" * 600):
        with pytest.raises(SubjectError):
            check_subject(bad)


def entry(subject: str, action: str, ids: list[str], *, decision: str = "allow",
          status: int = 200, purpose: str | None = "tax-collection", time: str = "t1",
          roles: tuple[str, ...] = ("tax-officer",), tenant: str = "tax") -> dict[str, Any]:
    return {"principal": {"subject": subject, "roles": list(roles)}, "action": action,
            "entities": {"ids": ids, "types": []}, "decision": decision, "status": status,
            "purpose": purpose, "tenant": tenant, "time": time}


def test_recipients_are_principals_given_the_data() -> None:
    tp = f"urn:ngsi-ld:Taxpayer:{P}"
    entries = [
        entry("officer", "entity.retrieve", [tp], time="t2"),
        entry("officer", "entity.query", ["urn:other", tp], time="t1"),
        entry("portal", "notification.send", ["sub-1", tp], roles=(), purpose=None),
        entry("snoop", "entity.retrieve", [tp], decision="deny", status=404),  # refused
        entry("adapter", "batch.upsert", [tp], roles=("adapter",)),  # a write, not a disclosure
        entry("failed", "entity.retrieve", [tp], status=500),
        entry("elsewhere", "entity.retrieve", ["urn:other"]),
    ]
    found = recipients_of(entries, [tp])
    assert [(r.principal, r.roles) for r in found] == [("officer", ("tax-officer",)),
                                                       ("portal", ())]
    officer = found[0]
    assert officer.actions == ("entity.query", "entity.retrieve") and officer.count == 2
    assert (officer.first, officer.last, officer.entities) == ("t1", "t2", (tp,))
    assert not discloses(entry("x", "entity.create", [tp]))


def test_lawful_basis_of_several_types_exempts_if_any_does() -> None:
    bases = lawful_bases()
    assert lawful_basis_of([CARD], bases) == "contract"
    assert lawful_basis_of([CARD, TAXPAYER], bases) == "legal-obligation"
    assert lawful_basis_of([UNCONTRACTED], bases) == "no-contract"


# -- on the store -------------------------------------------------------------------------------

async def test_find_by_id_and_by_reference(store: Store) -> None:
    await put(store, "", *subject_entities(), *strangers())
    await put(store, "tax", *subject_entities()[:3])
    found = await find(store, ["", "tax"], P, page_size=3)
    assert {(f.tenant, f.entity["id"]) for f in found} == (
        {("", i) for i in SUBJECT_IDS} | {("tax", e["id"]) for e in subject_entities()[:3]})
    by_id = {f.entity["id"] for f in found if f.by_id}
    assert by_id == {f"urn:ngsi-ld:Taxpayer:{P}", f"urn:ngsi-ld:TransitCard:{P}"}
    session = next(f for f in found if f.entity["type"] == [SESSION])
    assert session.attributes == ("https://cetate.city/ns/plateHash",)


async def test_find_follows_ids_that_hold_the_pseudonym(store: Store) -> None:
    account = f"urn:ngsi-ld:Account:{P}:main"
    await put(store, "", entity(account, UNCONTRACTED),
              entity("urn:ngsi-ld:Statement:1", UNCONTRACTED, of=rel(account)),
              entity("urn:ngsi-ld:Statement:2", UNCONTRACTED, of=rel("urn:ngsi-ld:Account:x")))
    found = await find(store, [""], P)
    assert {f.entity["id"] for f in found} == {account, "urn:ngsi-ld:Statement:1"}


async def test_erase_by_lawful_basis(store: Store) -> None:
    await put(store, "", *subject_entities(), *strangers(),
              entity(f"urn:ngsi-ld:Unknown:{P}", UNCONTRACTED))
    outcomes = await erase(store, await find(store, [""], P), lawful_bases())
    by_id = {o.id: o for o in outcomes}
    erased = {i for i, o in by_id.items() if o.erased}
    assert erased == {f"urn:ngsi-ld:TransitCard:{P}", "urn:ngsi-ld:TicketValidation:rat:1",
                      "urn:ngsi-ld:ParkingSession:cv-sms-1"}
    for kept in (f"urn:ngsi-ld:Taxpayer:{P}", "urn:ngsi-ld:TaxObligation:craiova:D-1",
                 "urn:ngsi-ld:TaxPayment:craiova:T-1"):
        answer = by_id[kept].answer
        assert not by_id[kept].erased and answer.article == "17(3)(b)"
        assert answer.lawful_basis == "legal-obligation" and "legal obligation" in answer.reason
    assert by_id[f"urn:ngsi-ld:Unknown:{P}"].answer.reason.startswith("unknown lawful basis")
    left = {e["id"] for e in (await store.query_entities("", EntityQuery(limit=100))).entities}
    assert left.isdisjoint(erased)
    assert {f"urn:ngsi-ld:Taxpayer:{P}", f"urn:ngsi-ld:Taxpayer:{OTHER}"} <= left


class FakeLog:
    """An audit reader over fixed entries (the real log is driven in test_http_privacy)."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        import orjson

        self.rows = [(n, orjson.dumps({"v": 1, **e})) for n, e in enumerate(entries)]
        self.erased: list[str] = []

    async def flush(self) -> None:
        pass

    async def query(self, q: EntryQuery) -> list[tuple[int, bytes]]:
        import orjson

        rows = [(n, raw) for n, raw in self.rows if n >= q.after
                and q.entity in orjson.loads(raw)["entities"]["ids"]]
        return rows[:q.limit]

    async def erase_subject(self, subject: str) -> int:
        self.erased.append(subject)
        return 0


async def test_documents(sqlite_store: Store) -> None:
    await put(sqlite_store, "", *subject_entities())
    taxpayer = f"urn:ngsi-ld:Taxpayer:{P}"
    # an access in another tenant than those searched is not this request's business
    log = FakeLog([entry("officer", "entity.retrieve", [taxpayer], tenant=""),
                   entry("elsewhere", "entity.retrieve", [taxpayer], tenant="tax")])
    document, found = await export_document(sqlite_store, log, [""], P, "2026-12-01T00:00:00Z")
    assert len(found) == len(SUBJECT_IDS)
    assert {e["entity"]["id"] for e in document["entities"]} == SUBJECT_IDS
    card = next(e for e in document["entities"] if e["entity"]["id"].startswith(
        "urn:ngsi-ld:TransitCard"))
    assert card["portable"] and card["foundBy"] == "id" and card["lawfulBasis"] == "contract"
    assert card["entity"]["cardIdHash"] == {"type": "Property", "value": P}  # compacted
    assert "@context" in card["entity"] and "modifiedAt" in card["entity"]
    assert [r["principal"] for r in document["recipients"]] == ["officer"]
    document, _ = await erase_document(sqlite_store, log, [""], P, "2026-12-01T00:00:00Z")
    assert len(document["erased"]) == 3 and len(document["kept"]) == 3
    assert log.erased == [P]
    document, _ = await export_document(sqlite_store, None, [""], P, "now")
    assert document["recipients"] is None and len(document["entities"]) == 3
