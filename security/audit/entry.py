"""Audit entries: what one access was, encoded as the exact bytes a Merkle leaf holds.

An entry is versioned, sorted-key compact JSON (orjson, UTF-8), so the same facts always give the
same bytes. It never holds a person's identifier in clear: the subject is an HMAC-SHA256
pseudonym, and details that could identify someone (the client address, the subject in clear)
appear only as salted commitments SHA-256(salt ‖ detail). The details and salts are returned
separately, to be kept in a deletable table: erasing them leaves the leaf — and so the tree —
untouched, but no longer linkable to the person (the salt is what makes the commitment hiding).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time as _time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, NamedTuple

import orjson

ENTRY_VERSION = 1
SALT_BYTES = 16  # 128-bit salts: commitments to low-entropy details (an IP) resist guessing
PUBLIC_SUBJECT = "public"  # the anonymous principal until the identity layer lands
DEFAULT_DECISION = "allow"
DEFAULT_RULE = "open-default"
SALT_POOL_BYTES = 64 * 1024  # random bytes drawn at once (2,048 salts)
PSEUDONYM_CACHE = 10_000  # subjects remembered per process (bounded: subjects are unbounded)


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: tuple[str, ...] = ()


PUBLIC = Principal(PUBLIC_SUBJECT)


@dataclass(slots=True)  # one per request: no per-instance dict
class AuditRecord:
    """The request-scoped record: the middleware opens it, handlers and the policy decision
    point fill it in (`note`), and the middleware seals it into an entry after the response."""

    action: str = ""
    tenant: str = ""
    principal: Principal = PUBLIC
    purpose: str | None = None
    decision: str = DEFAULT_DECISION
    rule: str = DEFAULT_RULE
    entity_ids: list[str] = field(default_factory=list)
    entity_types: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    personal: dict[str, str] = field(default_factory=dict)  # name -> detail to commit to

    def note(self, *, entity_ids: Iterable[str] = (), types: Iterable[str] = (),
             masked: Iterable[str] = (), **scalars: Any) -> None:
        """Add entity ids, types, masked attributes; set principal/decision/rule/purpose/..."""
        if entity_ids:
            _add(self.entity_ids, entity_ids)
        if types:
            _add(self.entity_types, types)
        if masked:
            _add(self.masked, masked)
        for name, value in scalars.items():
            if name not in _SCALARS:
                raise TypeError(f"an audit record has no field {name!r}")
            setattr(self, name, value)


def _add(target: list[str], values: Iterable[str]) -> None:
    """Extend `target` by `values`, ordered and duplicate-free."""
    if not target and isinstance(values, list) and len(values) == 1:
        target.append(values[0])  # the usual note: one id or one type
        return
    seen = set(target)  # a set lookup keeps a 1,000-entity query linear
    target.extend(v for v in dict.fromkeys(values) if v not in seen)


_SCALARS = frozenset({"action", "tenant", "principal", "purpose", "decision", "rule"})


class Pseudonyms:
    """Subject pseudonyms: HMAC-SHA256 under a key of the log, hex (stable across restarts)."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._known: dict[str, str] = {}  # a handful of principals make most requests

    def __call__(self, subject: str) -> str:
        pseudonym = self._known.get(subject)
        if pseudonym is None:
            pseudonym = hmac.digest(self._key, subject.encode(), "sha256").hex()
            if len(self._known) < PSEUDONYM_CACHE:
                self._known[subject] = pseudonym
        return pseudonym


class _RandomPool:
    """os.urandom bytes drawn in blocks: a getrandom call costs tens of µs on some VMs, more
    than the rest of sealing an entry; a block serves many entries."""

    def __init__(self, block: int = SALT_POOL_BYTES) -> None:
        self._block = block
        self._buffer = b""
        self._at = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._at + n > len(self._buffer):
                self._buffer, self._at = secrets.token_bytes(max(self._block, n)), 0
            out = self._buffer[self._at:self._at + n]
            self._at += n
            return out


_SALTS = _RandomPool()


def entry_text(value: str) -> str:
    """`value` as an entry can hold it. aiohttp hands a header's bytes that are not UTF-8 over
    as lone surrogates (surrogateescape), which no UTF-8 encoder takes: each becomes U+FFFD."""
    if value.isascii():
        return value
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that escapes no byte
        return value.encode("utf-8", "replace").decode("utf-8")


def dumps_plain(value: Any) -> bytes:
    """`value` as JSON, however odd its strings: one that no UTF-8 encoder takes (a lone
    surrogate, from whatever a request carried) becomes `entry_text`'s, anything JSON has no
    form for its str(), so that recording an access never fails the request it records."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return orjson.dumps(_plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return entry_text(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {entry_text(str(k)): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float):
        return value
    return entry_text(str(value))


def commitment(salt: bytes, detail: str) -> str:
    return hashlib.sha256(salt + detail.encode()).hexdigest()


class Detail(NamedTuple):
    """One committed detail: kept apart from the leaf, deleted on erasure. (Named tuples, not
    frozen dataclasses: two are made for every request, and they construct twice as fast.)"""

    name: str
    salt: bytes
    value: str


class Sealed(NamedTuple):
    """An entry ready to append: its leaf bytes, the facets to query it by, its details."""

    entry: bytes
    # (time, subject pseudonym, tenant, action, purpose, decision, status, entity ids): the
    # order of a stored facet row (security/audit/sqlite_log.py)
    facets: tuple[str, str, str, str, str | None, str, int | None, list[str]]
    details: tuple[Detail, ...]
    # The id of the row that kept its write's facts durable until this entry is appended
    # (audit_pending, broker/store/sqlite_audit.py): deleted in the same transaction.
    pending: int | None = None


def detail_items(subject: str, personal: Mapping[str, str]) -> list[tuple[str, str]]:
    """The details an entry commits to, sorted by name: the subject in clear and the record's
    personal ones (a record's own "subject" detail, if any, replaces the principal's)."""
    if not personal:
        return [("subject", subject)]
    if len(personal) == 1 and "client" in personal:  # the usual request: sorted already
        return [("client", personal["client"]), ("subject", subject)]
    return sorted({"subject": subject, **personal}.items())


def entry_bytes(time: str, request_id: str, status: int | None, action: str, tenant: str,
                pseudonym: str, roles: Iterable[str], purpose: str | None, decision: str,
                rule: str, ids: list[str], types: list[str], masked: list[str],
                commitments: dict[str, str]) -> bytes:
    """An entry's leaf bytes (it runs for every request, so it is lean: the body is built with
    its keys already in sorted order, which is what `encode` would give)."""
    return orjson.dumps({  # keys in sorted order (orjson keeps insertion order)
        "action": action,
        "commitments": commitments,
        "decision": decision,
        "entities": {"ids": ids, "types": types},
        "masked": masked,
        "principal": {"roles": sorted(roles) if roles else [], "subject": pseudonym},
        "purpose": purpose,
        "request": request_id,
        "rule": rule,
        "status": status,
        "tenant": tenant,
        "time": time,
        "v": ENTRY_VERSION,
    })


def take_salts(n: int) -> bytes:
    """`n` salts' bytes, SALT_BYTES each, from the pooled random bytes."""
    return _SALTS.take(SALT_BYTES * n)


def seal(record: AuditRecord, *, time: str, request_id: str, status: int | None,
         pseudonyms: Pseudonyms, pending: int | None = None) -> Sealed:
    """The entry of a record (a batch of requests' records is sealed by
    security/audit/sealer.py `seal_wires`, in one pass to the same bytes)."""
    principal = record.principal
    subject = pseudonyms(principal.subject)
    items = detail_items(principal.subject, record.personal)
    salts = take_salts(len(items))
    details: list[Detail] = []
    commitments: dict[str, str] = {}
    at = 0
    for name, value in items:
        salt = salts[at:at + SALT_BYTES]
        at += SALT_BYTES
        details.append(Detail(name, salt, value))
        commitments[name] = sha256(salt + value.encode()).hexdigest()
    tenant, action, purpose, decision, ids = record.tenant, record.action, record.purpose, \
        record.decision, record.entity_ids
    entry = entry_bytes(time, request_id, status, action, tenant, subject, principal.roles,
                        purpose, decision, record.rule, ids, record.entity_types,
                        record.masked, commitments)
    return Sealed(entry, (time, subject, tenant, action, purpose, decision, status, ids),
                  tuple(details), pending)


class Deferred(NamedTuple):
    """A finished record and its request's facts, to seal later: the log's committer seals a
    whole batch in one loop off the request path (security/audit/log.py `prepare`), where the
    code and data stay in the CPU's caches; sealed one by one between requests each entry
    costs several times more."""

    record: AuditRecord
    time: str
    request_id: str
    status: int | None
    pseudonyms: Pseudonyms
    pending: int | None = None  # Sealed.pending

    def seal(self) -> Sealed:
        record, request_id = self.record, self.request_id
        try:
            return seal(record, time=self.time, request_id=request_id, status=self.status,
                        pseudonyms=self.pseudonyms, pending=self.pending)
        except (orjson.JSONEncodeError, UnicodeEncodeError):  # strings JSON cannot hold
            cleaned = from_facts(facts(record, self.time, request_id))[0]  # via dumps_plain
            return seal(cleaned, time=self.time, request_id=entry_text(request_id),
                        status=self.status, pseudonyms=self.pseudonyms, pending=self.pending)


_second: list[Any] = [-1, ""]  # the last second formatted, reused within that second


def now() -> str:
    """An entry's time: UTC with microseconds, e.g. 2026-12-01T18:55:00.123456Z (strftime
    once a second)."""
    return entry_time(_time.time())


def entry_time(at: float | str) -> str:
    """`now` of a Unix time (a string is one already): requests' records carry the float, and
    the sealing process formats it."""
    if isinstance(at, str):
        return at
    sec = int(at)
    if sec != _second[0]:
        _second[:] = [sec, _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(sec))]
    return f"{_second[1]}.{int((at - sec) * 1_000_000):06d}Z"


def facts(record: AuditRecord, time: str, request_id: str) -> bytes:
    """A record's facts as kept durable for a write until its entry is sealed (audit_pending):
    what `from_facts` makes a record of again."""
    p = record.principal
    return dumps_plain([time, request_id, record.action, record.tenant, p.subject,
                        list(p.roles), record.purpose, record.decision, record.rule,
                        record.entity_ids, record.entity_types, record.masked,
                        record.personal])


def from_facts(data: bytes | str) -> tuple[AuditRecord, str, str]:
    """(record, time, request id) of kept facts."""
    (time, request_id, action, tenant, subject, roles, purpose, decision, rule, ids, types,
     masked, personal) = orjson.loads(data)
    return (AuditRecord(action=action, tenant=tenant, principal=Principal(subject, tuple(roles)),
                        purpose=purpose, decision=decision, rule=rule, entity_ids=ids,
                        entity_types=types, masked=masked, personal=personal),
            time, request_id)


def encode(body: Mapping[str, Any]) -> bytes:
    """The canonical bytes: sorted keys, no whitespace, UTF-8."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def decode(entry: bytes) -> dict[str, Any]:
    body = orjson.loads(entry)
    if not isinstance(body, dict) or body.get("v") != ENTRY_VERSION:
        raise ValueError("not a version-1 audit entry")
    return body


def opens(entry: bytes, detail: Detail) -> bool:
    """Whether a kept detail is the one the entry commits to (for erasure checks, auditors)."""
    commitments = decode(entry).get("commitments", {})
    return bool(commitments.get(detail.name) == commitment(detail.salt, detail.value))
