"""Bundles: how the audit log stores its entries, one row per appended batch (pure; both
engines' storage use it: security/audit/sqlite_log.py, broker/store/postgres_audit.py).

A bundle holds its entries' exact bytes (concatenated, with their sizes), their leaf hashes
(32 bytes each), their facets (the columns queries filter on) and their kept details (salts and
values of their commitments, erasable). A row per entry and the index entries beside it cost,
per entry, more than the rest of the audit together; a row per batch costs one insert per
commit. Queries narrow bundles with the storage's index on time, the bundle's short keys of its
entity ids and subjects (`key_needles`) and a substring test of the facets text (`needles`),
then filter exactly here (`matches`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import blake2b
from typing import Any, NamedTuple

import orjson

from security.audit.entry import Detail, Sealed
from security.audit.merkle import HASH_SIZE, Frontier, leaf_hash
from security.audit.query import EntryQuery

NODE_MIN_LEVEL = 4  # inner nodes kept from subtrees of 16 leaves up
KEY_BYTES = 8  # a bundle key (key_of): 2^-64 odds of a false match per key
# A facet row: [time, subject, tenant, action, purpose, decision, status, [entity ids]]
TIME, SUBJECT, ENTITIES = 0, 1, 7
FACET_FILTERS = (("subject", 1), ("tenant", 2), ("action", 3), ("purpose", 4),
                 ("decision", 5))


def hash_at(hashes: bytes, i: int) -> bytes:
    """The i-th leaf hash of a bundle's hashes column."""
    return bytes(hashes[i * HASH_SIZE:(i + 1) * HASH_SIZE])


def kept_details(details: Sequence[Detail]) -> list[list[str]] | None:
    """One entry's kept details as stored: [[name, salt hex, value], ...], or None."""
    return [[d.name, d.salt.hex(), d.value] for d in details] if details else None


def parse_details(kept: Sequence[Sequence[str]] | None) -> list[Detail]:
    return [Detail(name, bytes.fromhex(salt), value) for name, salt, value in kept] \
        if kept else []


class Bundle:
    """One stored bundle, decoded as far as asked."""

    __slots__ = ("_entries", "_offsets", "_sizes", "count", "first")

    def __init__(self, first: int, count: int, sizes: str | bytes, entries: bytes) -> None:
        self.first, self.count = first, count
        self._sizes, self._entries = sizes, entries
        self._offsets: list[int] | None = None

    def entry(self, idx: int) -> bytes:
        if self._offsets is None:
            offsets, at = [0], 0
            for size in orjson.loads(self._sizes):
                at += size
                offsets.append(at)
            self._offsets = offsets
        i = idx - self.first
        return bytes(self._entries[self._offsets[i]:self._offsets[i + 1]])


def key_of(kind: str, value: str) -> bytes:
    """A bundle's short key for an entity id ("e") or a subject pseudonym ("s"): its keys
    column holds one per distinct value, so a query by entity or subject reads that small
    column of each bundle, not its facets (a false match only costs reading the facets)."""
    return blake2b(f"{kind}:{value}".encode(), digest_size=KEY_BYTES).digest()


def bundle_keys(batch: Sequence[Sealed]) -> bytes:
    keys = {key_of("s", s.facets[1]) for s in batch}  # SUBJECT
    keys.update(key_of("e", e) for s in batch for e in s.facets[7])  # ENTITIES
    return b"".join(sorted(keys))


class Built(NamedTuple):
    """A batch of sealed entries as one bundle, all but its numbering (which the storage
    gives under its write lock): what a bundle row stores, and the kept write facts its
    append deletes (Sealed.pending). Built by `build`, anywhere (the sealing process too)."""

    length: int  # entries
    time_min: str
    time_max: str
    keys: bytes
    hashes: bytes  # the leaf hashes, HASH_SIZE bytes each
    sizes: bytes  # JSON
    facets: bytes  # JSON
    kept: bytes | None  # JSON, None: no details kept
    entries: bytes
    pending: tuple[int, ...] = ()


def build(batch: Sequence[Sealed]) -> Built:
    """The bundle of a non-empty batch of sealed entries, in order."""
    times = [s.facets[0] for s in batch]
    kept = [kept_details(s.details) for s in batch]
    return Built(len(batch), min(times), max(times), bundle_keys(batch),
                 b"".join([leaf_hash(s.entry) for s in batch]),
                 orjson.dumps([len(s.entry) for s in batch]),
                 orjson.dumps([s.facets for s in batch]),
                 orjson.dumps(kept) if any(k is not None for k in kept) else None,
                 b"".join([s.entry for s in batch]),
                 tuple(s.pending for s in batch if s.pending is not None))


def bundle_row(first: int, built: Built) -> tuple[Any, ...]:
    """The stored row of a bundle numbered from `first`, in the columns' order: first, count,
    time_min, time_max, keys, hashes, sizes, facets, kept, entries (the small ones first: a
    row is read from its start)."""
    return (first, *built[:9])


def number(frontier: Frontier, built: Built) -> list[tuple[int, int, bytes]]:
    """Append a bundle's leaves to the frontier; the inner nodes to keep."""
    return frontier.extend(built.hashes, NODE_MIN_LEVEL)


def erase_facets(subject: str, facets: str | bytes, kept: str | bytes) -> tuple[int, str | None]:
    """A bundle's kept details without those of the subject's entries: (how many entries had
    some, the new kept column)."""
    rows, details = orjson.loads(facets), orjson.loads(kept)
    erased = 0
    for i, row in enumerate(rows):
        if row[SUBJECT] == subject and details[i] is not None:
            details[i] = None
            erased += 1
    left = orjson.dumps(details).decode() if any(d is not None for d in details) else None
    return erased, left


def needles(q: EntryQuery) -> list[str]:
    """Strings every facet text of a matching bundle contains (each filter's JSON string;
    entity and subject go by keys instead)."""
    values = [getattr(q, name) for name, _ in FACET_FILTERS if name != "subject"]
    return [orjson.dumps(v).decode() for v in values if v is not None]


def key_needles(q: EntryQuery) -> list[bytes]:
    """Keys the keys column of a matching bundle holds (NULL keys: a bundle moved from the
    leaves of an earlier version, which has none and is read whole)."""
    return [key_of(kind, v) for kind, v in (("e", q.entity), ("s", q.subject))
            if v is not None]


def matches(q: EntryQuery, row: Sequence[Any]) -> bool:
    """Whether one entry's facet row passes every filter of the query."""
    time = row[TIME]
    if (q.since and time < q.since) or (q.until and time >= q.until):
        return False
    for name, at in FACET_FILTERS:
        value = getattr(q, name)
        if value is not None and row[at] != value:
            return False
    return q.entity is None or q.entity in row[ENTITIES]


def bundle_matches(q: EntryQuery, row: Sequence[Any], room: int) -> list[tuple[int, bytes]]:
    """Of one (first, count, sizes, facets, entries) row, the first `room` entries the query
    selects."""
    first, count, sizes, facets, blob = row
    bundle = Bundle(first, count, sizes, blob)
    out: list[tuple[int, bytes]] = []
    for i, facet in enumerate(orjson.loads(facets)):
        idx = first + i
        if idx >= q.after and matches(q, facet):
            out.append((idx, bundle.entry(idx)))
            if len(out) >= room:
                break
    return out


def select_matching(q: EntryQuery, bundles: Iterable[Sequence[Any]]
                    ) -> list[tuple[int, bytes]]:
    """From (first, count, sizes, facets, entries) rows in index order, the query's page."""
    out: list[tuple[int, bytes]] = []
    for row in bundles:
        out += bundle_matches(q, row, q.limit - len(out))
        if len(out) >= q.limit:
            break
    return out
