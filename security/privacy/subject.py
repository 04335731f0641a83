"""Data-subject requests (GDPR art. 15 access, 20 portability, 17 erasure), given the subject's
pseudonym: find what refers to it, export it with who received it, erase what may be erased.

What "refers to" a pseudonym P (adapters build ids and references from the keyed hash, never
from the identifier: urn:ngsi-ld:Taxpayer:P, urn:ngsi-ld:TransitCard:P, plateHash = P):
- an entity whose id contains P;
- an entity any of whose attribute values or objects (at any depth: lists, JSON values,
  sub-attributes) is P, a URN ending in ":P", or the id of an entity found by the first rule
  (references to urn:ngsi-ld:TaxObligation:craiova:123 from a payment, when that id holds P).

I/O-light: the pure matching (`refers`, `recipients_of`) is tested directly; the searches speak
the store protocol and an audit reader (security/audit/log.py AuditLog.query). The store has no
"any attribute equals" index, so a search pages through every entity of each tenant searched
(PAGE_SIZE at a time): O(entities) per request, which a few requests a month can afford.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from broker.store.protocol import Entity, EntityQuery, Store
from security.audit.entry import decode
from security.audit.log import MAX_QUERY_LIMIT, EntryQuery
from security.privacy.erasure import ErasureAnswer, erasure, portability_applies

PAGE_SIZE = 500
MIN_SUBJECT_CHARS = 16  # a shorter "pseudonym" would match by substring half the store
MAX_SUBJECT_CHARS = 512
NO_CONTRACT = "no-contract"  # the lawful basis of a type without a contract: the DPO decides
# Audit actions that disclose entities to their principal (reads, queries, notifications); the
# writes of adapters are not disclosures to a recipient (art. 4(9)).
DISCLOSING_ACTIONS = ("entity.retrieve", "entity.query", "notification.send", "temporal.",
                      "batch.query")
ACCESS_ARTICLES = "15, 20"
ERASURE_ARTICLE = "17"


class SubjectError(ValueError):
    """A subject that cannot be searched for (empty, too short, too long)."""


def check_subject(subject: Any) -> str:
    if not isinstance(subject, str) or not subject.strip():
        raise SubjectError("subject must be the data subject's pseudonym (a string)")
    subject = subject.strip()
    if len(subject) < MIN_SUBJECT_CHARS:
        raise SubjectError(f"subject must be a pseudonym of at least {MIN_SUBJECT_CHARS} "
                           f"characters (the adapters' keyed hashes have 64)")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise SubjectError(f"subject is longer than {MAX_SUBJECT_CHARS} characters")
    return subject


# -- pure matching ---------------------------------------------------------------------------


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def names(subject: str, value: str, ids: frozenset[str] = frozenset()) -> bool:
    """Whether one value names the subject: the pseudonym itself, a URN built from it, or one
    of `ids` (entities whose id holds it)."""
    return (value == subject or value in ids
            or (value.startswith("urn:") and value.endswith(":" + subject)))


def referring_attributes(entity: Mapping[str, Any], subject: str,
                         ids: frozenset[str] = frozenset()) -> list[str]:
    """The attribute IRIs of an entity (internal form) whose values name the subject."""
    return [iri for iri, instances in entity.get("attrs", {}).items()
            if any(names(subject, s, ids) for s in _strings(instances))]


def refers(entity: Mapping[str, Any], subject: str, ids: frozenset[str] = frozenset()) -> bool:
    """Whether an entity refers to the subject (by id, or by any attribute value)."""
    return subject in entity["id"] or bool(referring_attributes(entity, subject, ids))


@dataclass(frozen=True)
class Found:
    tenant: str
    entity: Entity
    by_id: bool  # its id holds the pseudonym
    attributes: tuple[str, ...]  # attribute IRIs naming the subject


@dataclass(frozen=True)
class Recipient:
    """One principal that received data about the subject's entities (from the audit log)."""

    principal: str  # the log's pseudonym of the principal's subject
    roles: tuple[str, ...]
    actions: tuple[str, ...]
    purposes: tuple[str | None, ...]
    tenants: tuple[str, ...]
    entities: tuple[str, ...]
    first: str
    last: str
    count: int

    def as_json(self) -> dict[str, Any]:
        return {"principal": self.principal, "roles": list(self.roles),
                "actions": list(self.actions), "purposes": list(self.purposes),
                "tenants": list(self.tenants), "entities": list(self.entities),
                "first": self.first, "last": self.last, "accesses": self.count}


def discloses(entry: Mapping[str, Any]) -> bool:
    """Whether an audit entry records data given to its principal: allowed, answered, and a
    read, query or notification."""
    status = entry.get("status")
    return (entry.get("decision") == "allow" and isinstance(status, int) and status < 400
            and str(entry.get("action", "")).startswith(DISCLOSING_ACTIONS))


def recipients_of(entries: Iterable[Mapping[str, Any]], entity_ids: Iterable[str],
                  ) -> list[Recipient]:
    """Who received the entities, from decoded audit entries, one per (principal, roles)."""
    wanted = set(entity_ids)
    groups: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for entry in entries:
        if not discloses(entry):
            continue
        about = [i for i in entry.get("entities", {}).get("ids", []) if i in wanted]
        if not about:
            continue
        principal = entry.get("principal", {})
        key = (str(principal.get("subject", "")), tuple(principal.get("roles", [])))
        g = groups.setdefault(key, {"actions": set(), "purposes": set(), "tenants": set(),
                                    "entities": set(), "times": [], "count": 0})
        g["actions"].add(entry.get("action"))
        g["purposes"].add(entry.get("purpose"))
        g["tenants"].add(entry.get("tenant", ""))
        g["entities"].update(about)
        g["times"].append(str(entry.get("time", "")))
        g["count"] += 1
    return [Recipient(principal=subject, roles=roles, actions=tuple(sorted(g["actions"])),
                      purposes=tuple(sorted(g["purposes"], key=lambda p: p or "")),
                      tenants=tuple(sorted(g["tenants"])), entities=tuple(sorted(g["entities"])),
                      first=min(g["times"]), last=max(g["times"]), count=g["count"])
            for (subject, roles), g in sorted(groups.items())]


# -- searching the store and the log ----------------------------------------------------------


class AuditReader(Protocol):
    """What the searches need of the audit log (security/audit/log.py AuditLog)."""

    async def flush(self) -> None: ...

    async def query(self, q: EntryQuery) -> list[tuple[int, bytes]]: ...


async def _every_entity(store: Store, tenant: str, page_size: int) -> AsyncIterator[Entity]:
    offset = 0
    while True:
        page = await store.query_entities(tenant, EntityQuery(limit=page_size, offset=offset))
        for entity in page.entities:
            yield entity
        offset += len(page.entities)
        if len(page.entities) < page_size:
            return


async def find(store: Store, tenants: Sequence[str], subject: str, *,
               page_size: int = PAGE_SIZE) -> list[Found]:
    """Every entity of these tenants that refers to the subject (see the module docstring)."""
    found: list[Found] = []
    for tenant in dict.fromkeys(tenants):
        # One pass finds ids holding the pseudonym and direct references; a second pass, only
        # when some found id does not end in it, finds references to those ids. Pages are
        # streamed: memory holds the hits, not the tenant.
        hits: dict[str, Found] = {}
        extra: set[str] = set()
        async for entity in _every_entity(store, tenant, page_size):
            by_id = subject in entity["id"]
            attrs = referring_attributes(entity, subject)
            if by_id or attrs:
                hits[entity["id"]] = Found(tenant, entity, by_id, tuple(attrs))
                if by_id and not entity["id"].endswith(":" + subject):
                    extra.add(entity["id"])
        if extra:
            ids = frozenset(extra)
            async for entity in _every_entity(store, tenant, page_size):
                if entity["id"] in hits:
                    continue
                attrs = referring_attributes(entity, subject, ids)
                if attrs:
                    hits[entity["id"]] = Found(tenant, entity, False, tuple(attrs))
        found.extend(hits.values())
    return found


async def audit_entries_about(audit: AuditReader, entity_ids: Iterable[str],
                              tenants: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The decoded audit entries naming any of these entities (paged through the log)."""
    await audit.flush()  # reads' entries are queued: count them too
    out: dict[int, dict[str, Any]] = {}
    allowed = None if tenants is None else set(tenants)
    for entity_id in dict.fromkeys(entity_ids):
        after = 0
        while True:
            rows = await audit.query(EntryQuery(entity=entity_id, after=after,
                                                limit=MAX_QUERY_LIMIT))
            for idx, raw in rows:
                entry = decode(raw)
                if allowed is None or entry.get("tenant", "") in allowed:
                    out[idx] = entry
            if len(rows) < MAX_QUERY_LIMIT:
                break
            after = rows[-1][0] + 1
    return [out[i] for i in sorted(out)]


# -- the answers ------------------------------------------------------------------------------


def lawful_basis_of(types: Iterable[str], bases: Mapping[str, str]) -> str:
    """The lawful basis that governs an entity of these types: the one that exempts most (an
    entity is erased only if each of its types allows it)."""
    found = [bases.get(t, NO_CONTRACT) for t in types]
    refused = [b for b in found if not erasure(b).allowed]
    return (refused or found or [NO_CONTRACT])[0]


@dataclass(frozen=True)
class ErasureOutcome:
    tenant: str
    id: str
    types: tuple[str, ...]
    erased: bool
    answer: ErasureAnswer

    def as_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "id": self.id, "type": list(self.types),
                "erased": self.erased, "lawfulBasis": self.answer.lawful_basis,
                "article": self.answer.article, "reason": self.answer.reason}


def _delete_whole(current: Entity | None) -> tuple[None, bool]:
    return None, current is not None


async def erase(store: Store, found: Sequence[Found], bases: Mapping[str, str],
                ) -> list[ErasureOutcome]:
    """Delete each found entity whose types' lawful basis allows erasure (art. 17(1)); keep
    the others with the art. 17(3) reason. Deletes go through the store's write path
    (subscribers are told entityDeleted)."""
    outcomes = []
    for item in found:
        types = tuple(item.entity.get("type", ()))
        answer = erasure(lawful_basis_of(types, bases))
        if answer.allowed:  # an entity deleted meanwhile is erased all the same
            await store.apply(item.tenant, item.entity["id"], _delete_whole)
        outcomes.append(ErasureOutcome(item.tenant, item.entity["id"], types, answer.allowed,
                                       answer))
    return outcomes


def portable(types: Iterable[str], bases: Mapping[str, str]) -> bool:
    """Whether art. 20 (portability) applies to an entity of these types, besides art. 15."""
    return all(portability_applies(bases.get(t, NO_CONTRACT)) for t in types)


# -- the documents answered (HTTP and CLI alike) ----------------------------------------------

HISTORY_NOTE = ("this broker keeps no temporal history yet: the entities' current state is "
                "all it holds about the subject")


def _jsonld(entity: Entity) -> dict[str, Any]:
    """An entity as normalized JSON-LD with system attributes, compacted with its type's
    contract @context (the core context alone for a type without a contract)."""
    from broker.entities.render import RenderOptions, render_entity
    from broker.ld.core import CORE_CONTEXT_URL
    from broker.ld.termmap import CORE_TERMS
    from broker.validation.contracts import contracts

    known = contracts()
    contract = next((known[t] for t in entity.get("type", ()) if t in known), None)
    terms = contract.terms if contract is not None else CORE_TERMS
    body = render_entity(entity, terms, RenderOptions(format="normalized", sys_attrs=True))
    body["@context"] = [contract.context, CORE_CONTEXT_URL] if contract else CORE_CONTEXT_URL
    return body


def lawful_bases() -> dict[str, str]:
    """{type IRI: lawful basis} of every contracted type."""
    from broker.validation.contracts import contracts

    return {iri: c.lawful_basis for iri, c in contracts().items()}


def found_ids(found: Iterable[Found]) -> list[str]:
    return [f.entity["id"] for f in found]


def found_types(found: Iterable[Found]) -> list[str]:
    return list(dict.fromkeys(t for f in found for t in f.entity.get("type", ())))


async def export_document(store: Store, audit: AuditReader | None, tenants: Sequence[str],
                          subject: str, now: str) -> tuple[dict[str, Any], list[Found]]:
    """The art. 15 / art. 20 answer for a subject, and what was found (for the audit entry)."""
    found = await find(store, tenants, subject)
    bases = lawful_bases()
    recipients: list[dict[str, Any]] | None = None
    if audit is not None:
        entries = await audit_entries_about(audit, found_ids(found), tenants)
        recipients = [r.as_json() for r in recipients_of(entries, found_ids(found))]
    document = {
        "subject": subject,
        "generatedAt": now,
        "articles": ACCESS_ARTICLES,
        "tenants": list(tenants),
        "entities": [{"tenant": f.tenant, "foundBy": "id" if f.by_id else "reference",
                      "lawfulBasis": lawful_basis_of(f.entity.get("type", ()), bases),
                      "portable": portable(f.entity.get("type", ()), bases),
                      "entity": _jsonld(f.entity)}
                     for f in found],
        # None: the audit log is off, so nobody can say who received the data
        "recipients": recipients,
        "history": HISTORY_NOTE,
    }
    return document, found


class AuditEraser(AuditReader, Protocol):
    async def erase_subject(self, subject: str) -> int: ...


async def erase_document(store: Store, audit: AuditEraser | None, tenants: Sequence[str],
                         subject: str, now: str) -> tuple[dict[str, Any], list[Found]]:
    """The art. 17 answer: what was erased, what is kept and why; and what was found."""
    found = await find(store, tenants, subject)
    outcomes = await erase(store, found, lawful_bases())
    # The log's leaves hold pseudonyms only and stay (the tree must verify); what it can erase
    # is the kept details (salts and values of commitments) of entries whose principal was
    # this subject: a data subject who also acted as a principal under this pseudonym.
    details = await audit.erase_subject(subject) if audit is not None else None
    document = {
        "subject": subject,
        "generatedAt": now,
        "articles": ERASURE_ARTICLE,
        "tenants": list(tenants),
        "erased": [o.as_json() for o in outcomes if o.erased],
        "kept": [o.as_json() for o in outcomes if not o.erased],
        "auditLog": {"detailsErased": details,
                     "note": "audit entries keep pseudonymous entity ids only; the details "
                             "committed to by the entries of this subject as a principal "
                             "were erased, the leaves stay so the log still verifies"
                     if details is not None else "the audit log is off"},
        "history": HISTORY_NOTE,
    }
    return document, found
