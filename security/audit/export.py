"""Audit exports and their offline verification.

An export proves that the entries [from, to) are leaves from..to-1 of the tree a signed
checkpoint commits to, with nothing but the verifier key:

    left         the compact range [0, from): one hash per set bit of `from`, largest first
    entries      {index, entry (exact leaf bytes, base64), hash (its leaf hash, base64)} for
                 from <= index < to
    consistency  RFC 9162 consistency proof from size `to` to the checkpoint's size
    older        optional {size, root, proof}: consistency proofs from earlier sizes (whose root
                 the proof must reproduce), for checking earlier checkpoints outside the range

The verifier folds left + the listed leaf hashes into the root of size `to` (and of every size
in between, which is how it checks a previously seen checkpoint inside the range), then checks
the consistency proof to the signed root; and it checks that every entry's bytes hash to its
listed leaf hash. So an entry is accepted only if its hash is bound by the signed root, and an
altered entry (or hash) is named by its index, the others still proved included. (Entry and
hash forged together, consistently, only make the fold fail: the range is named, not the entry;
nothing signed says which leaf it was.) The export is canonical JSON (sorted keys, no spaces, no
trailing newline) and the verifier insists on that form, so any change to any byte is either a
parse error, a non-canonical document, or a change to a value that the proofs bind.
"""

from __future__ import annotations

import binascii
import multiprocessing
import os
import threading
from binascii import a2b_base64, b2a_base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import orjson

from security.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    Frontier,
    ProofError,
    consistency_proof,
    frontier_at,
    leaf_hash,
    verify_consistency,
)
from security.audit.note import (
    Checkpoint,
    NoteError,
    VerifierKey,
    b64,
    open_checkpoint,
    unb64,
)

if TYPE_CHECKING:
    from security.audit.log import AuditStorage

FORMAT = "cetate-audit-export/2"
MAX_NAMED = 10  # altered entries named one by one in a report; the rest counted
_KEYS = frozenset({"format", "checkpoint", "from", "to", "left", "entries", "consistency",
                   "older"})


_B64_VALUE = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _canonical_tail(text: str) -> bool:
    """Whether a padded base64 text leaves its unused bits zero (RFC 4648 §3.5: encoders set
    them to zero; strict decoders elsewhere may ignore them, so two texts could decode alike)."""
    if text.endswith("=="):
        return _B64_VALUE.get(text[-3], 1) & 0x0F == 0
    return _B64_VALUE.get(text[-2], 1) & 0x03 == 0


def encode(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def build_export(storage: AuditStorage, note: str, start: int, end: int | None,
                 older: Iterable[int] = ()) -> bytes:
    """The export of [start, end) against the signed checkpoint `note` (end defaults to its
    size and is clamped to it)."""
    checkpoint = Checkpoint.parse(note[:note.rindex("\n\n") + 1])
    size = checkpoint.size
    end = size if end is None else min(end, size)
    start = max(0, min(start, end))
    proofs = [{"size": m, "root": b64(frontier_at(m, storage.perfect).root()),
               "proof": [b64(h) for h in consistency_proof(m, size, storage.perfect)]}
              for m in sorted(set(older)) if 0 <= m <= size]
    document = {
        "format": FORMAT,
        "checkpoint": note,
        "from": start,
        "to": end,
        "left": [b64(h) for h in frontier_at(start, storage.perfect).hashes or []],
        "entries": [{"index": i, "entry": b64(e), "hash": b64(leaf_hash(e))}
                    for i, e in storage.entries(start, end)],
        "consistency": [b64(h) for h in consistency_proof(end, size, storage.perfect)],
        "older": proofs,
    }
    return encode(document)


@dataclass
class Report:
    """What the verifier checked and what failed where; ok when nothing failed."""

    checked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    entries: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def text(self) -> str:
        lines = [f"ok    {c}" for c in self.checked] + [f"FAIL  {f}" for f in self.failures]
        lines.append("verified" if self.ok else f"{len(self.failures)} check(s) failed")
        return "\n".join(lines) + "\n"


class _Bad(Exception):
    pass


def _int(document: dict[str, Any], key: str) -> int:
    value = document.get(key)
    if type(value) is not int or value < 0:
        raise _Bad(f"export field {key!r} is not a non-negative integer")
    return value


def _hashes(values: Any, where: str) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _Bad(f"{where} is not a list of base64 hashes")
    try:
        hashes = [unb64(v) for v in values]
    except NoteError as exc:
        raise _Bad(f"{where}: {exc}") from None
    if any(len(h) != HASH_SIZE for h in hashes):
        raise _Bad(f"{where}: a hash is not {HASH_SIZE} bytes")
    return hashes


PARALLEL_MIN = 50_000  # entries from which other processes check leaf hashes too
_SHARED: list[Any] = []  # the entries, for forked checkers (inherited, never pickled)
# (index, rank, what is wrong there): at one index, the serial order of the checks (the item's
# shape, rank 0; its bytes, 1; its listed hash, 2) says which is reported.
ErrorAt = tuple[int, int, str]


def _check_entries(entries: list[Any], start: int, frontier: Frontier, prev_end: int,
                   prev_root: bytes | None) -> tuple[list[bytes], int, bytes | None, list[int]]:
    """Check every entry and fold the listed leaf hashes into the frontier: (its hashes, its
    size, the root at prev_end if inside the range, the indices of altered entries). The first
    malformed entry, in index order, raises. Large exports have their entries' bytes checked
    against their listed hashes by forked processes (one per CPU) while this one folds."""
    workers = _workers(len(entries))
    if workers < 2:
        found = _leaves(entries, start, 0, len(entries))
        folded = _fold(entries, start, frontier, prev_end, prev_root)
    else:
        _SHARED[:] = [entries]
        try:
            bounds = [len(entries) * i // workers for i in range(workers + 1)]
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                pending = pool.starmap_async(_shared_leaves, [
                    (start, lo, hi) for lo, hi in pairwise(bounds)])
                folded = _fold(entries, start, frontier, prev_end, prev_root)
                parts = pending.get()
        finally:
            _SHARED.clear()
        errors = [e for _, e in parts if e is not None]
        found = ([i for altered, _ in parts for i in altered], errors[0] if errors else None)
    hashes, size, prev_root, fold_error = folded
    altered, leaf_error = found
    errors = [e for e in (leaf_error, fold_error) if e is not None]
    if errors:
        raise _Bad(min(errors)[2])  # the first in index order
    return hashes, size, prev_root, altered


def _workers(count: int) -> int:
    """Processes to check `count` leaves with: forking is only safe with no other thread (a
    lock one holds would stay held in the child) and only pays off for large exports."""
    if count < PARALLEL_MIN or threading.active_count() > 1 or not hasattr(os, "fork"):
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


def _shared_leaves(start: int, lo: int, hi: int) -> tuple[list[int], ErrorAt | None]:
    return _leaves(_SHARED[0], start, lo, hi)


def _leaves(entries: list[Any], start: int, lo: int, hi: int
            ) -> tuple[list[int], ErrorAt | None]:
    """Of entries[lo:hi]: the indices of those whose bytes do not hash to their listed leaf
    hash (or whose hash is not in canonical base64), and the first whose bytes are not strict,
    canonical base64. A malformed item ends the check here (`_fold` reports it). Hashes start
    from a copy of the prefixed base: cheaper than a new SHA-256 context and a concatenation."""
    leaf_base = sha256(LEAF_PREFIX)
    altered: list[int] = []
    index = start + lo
    for item in entries[lo:hi]:
        try:
            text, listed = item["entry"], item["hash"]
        except (TypeError, KeyError):
            return altered, None
        if type(text) is not str or type(listed) is not str:
            return altered, None
        try:
            entry = a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            return altered, (index, 1, f"entry at index {index}: not base64")
        if text[-1:] == "=" and not _canonical_tail(text):
            return altered, (index, 1, f"entry at index {index}: non-canonical base64")
        leaf = leaf_base.copy()
        leaf.update(entry)
        if b2a_base64(leaf.digest(), newline=False) != listed.encode():
            altered.append(index)
        index += 1
    return altered, None


def _fold(entries: list[Any], start: int, frontier: Frontier, prev_end: int,
          prev_root: bytes | None) -> tuple[list[bytes], int, bytes | None, ErrorAt | None]:
    """Fold the listed leaf hashes of well-formed entries into the frontier (Frontier.add,
    inlined: this runs once per entry); stops at the first malformed one (its error)."""
    hashes, size = list(frontier.hashes or []), frontier.size
    node_base = sha256(NODE_PREFIX)
    pop, push = hashes.pop, hashes.append
    index = start
    for item in entries:
        try:
            number, text, listed = item["index"], item["entry"], item["hash"]
        except (TypeError, KeyError):
            number = text = listed = None
        if number != index or type(number) is not int or type(text) is not str \
                or type(listed) is not str or len(item) != 3:
            return hashes, size, prev_root, (
                index, 0, f"entry #{index - start}: expected index {index} with its entry bytes "
                f"and leaf hash (dropped, reordered or altered entry)")
        try:
            h = a2b_base64(listed, strict_mode=True)
        except (binascii.Error, ValueError):
            return hashes, size, prev_root, (
                index, 2, f"entry at index {index}: its leaf hash is not base64")
        if len(h) != HASH_SIZE:
            return hashes, size, prev_root, (
                index, 2, f"entry at index {index}: its leaf hash is not {HASH_SIZE} bytes")
        n = size
        while n & 1:
            node = node_base.copy()
            node.update(pop() + h)
            h = node.digest()
            n >>= 1
        push(h)
        size += 1
        index += 1
        if index == prev_end:
            prev_root = Frontier(size, list(hashes)).root()
    return hashes, size, prev_root, None


def verify_export(raw: bytes, keys: Sequence[VerifierKey], previous: str | None = None) -> Report:
    """Check an export offline: signature, every entry's inclusion, consistency with a
    previously seen checkpoint (a signed note) if given."""
    report = Report()
    try:
        _verify(raw, keys, previous, report)
    except _Bad as exc:
        report.failures.append(str(exc))
    return report


def _verify(raw: bytes, keys: Sequence[VerifierKey], previous: str | None,
            report: Report) -> None:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Bad(f"export is not JSON: {exc}") from None
    if not isinstance(document, dict) or set(document) != _KEYS:
        raise _Bad(f"export does not have exactly the fields {sorted(_KEYS)}")
    if encode(document) != raw:
        raise _Bad("export is not in canonical form (sorted keys, no whitespace): altered")
    if document["format"] != FORMAT:
        raise _Bad(f"unknown export format {document['format']!r}")
    note = document["checkpoint"]
    if not isinstance(note, str):
        raise _Bad("checkpoint is not a signed note")
    try:
        checkpoint = open_checkpoint(note, keys)
    except NoteError as exc:
        raise _Bad(f"checkpoint signature: {exc}") from None
    report.checkpoint = checkpoint
    report.checked.append(f"checkpoint signed by a known key: origin {checkpoint.origin}, "
                          f"size {checkpoint.size}")

    start, end = _int(document, "from"), _int(document, "to")
    if not start <= end <= checkpoint.size:
        raise _Bad(f"range [{start}, {end}) is not within the checkpoint size "
                   f"{checkpoint.size}")
    entries = document["entries"]
    if not isinstance(entries, list) or len(entries) != end - start:
        raise _Bad(f"expected {end - start} entries for [{start}, {end}), found "
                   f"{len(entries) if isinstance(entries, list) else 'none'}")
    left = _hashes(document["left"], "left")
    if len(left) != start.bit_count():
        raise _Bad(f"left holds {len(left)} hashes; the range [0, {start}) needs "
                   f"{start.bit_count()}")
    frontier = Frontier(start, left)
    prev = _previous(previous, keys, checkpoint, report)
    prev_root: bytes | None = frontier.root() if prev is not None and prev.size == start \
        else None
    hashes, size, prev_root, altered = _check_entries(entries, start, frontier,
                                                      prev.size if prev is not None else -1,
                                                      prev_root)
    for at in altered[:MAX_NAMED]:
        report.failures.append(f"entry at index {at}: its bytes do not hash to its leaf hash "
                               f"(the entry or its hash was altered)")
    if len(altered) > MAX_NAMED:
        report.failures.append(f"{len(altered) - MAX_NAMED} more entries altered (first "
                               f"{altered[0]}, last {altered[-1]})")
    frontier = Frontier(size, hashes)
    report.entries = len(entries)
    consistency = _hashes(document["consistency"], "consistency")
    try:
        verify_consistency(end, checkpoint.size, consistency, frontier.root(), checkpoint.root)
    except ProofError as exc:
        raise _Bad(f"entries [{start}, {end}) are not the leaves of the signed tree "
                   f"(an entry was changed, dropped, added or reordered): {exc}") from None
    kept = len(entries) - len(altered)
    report.checked.append(f"{kept} entries of [{start}, {end}) included in the signed tree"
                          if altered else
                          f"{len(entries)} entries [{start}, {end}) included in the signed tree")
    older = _older(document["older"], checkpoint)
    if prev is not None:
        _check_previous(prev, prev_root, older, checkpoint, report)


def _older(items: Any, checkpoint: Checkpoint) -> dict[int, bytes]:
    """size -> root of every older tree head the export proves consistent with its checkpoint."""
    if not isinstance(items, list):
        raise _Bad("older is not a list")
    roots: dict[int, bytes] = {}
    for item in items:
        if not isinstance(item, dict) or set(item) != {"size", "root", "proof"} \
                or type(item["size"]) is not int:
            raise _Bad("older: malformed item")
        size = item["size"]
        (root,) = _hashes([item["root"]], f"older root of size {size}")
        proof = _hashes(item["proof"], f"older proof from size {size}")
        if size == 0 and root != EMPTY_ROOT:
            raise _Bad("older: the empty tree has another root")
        try:
            verify_consistency(size, checkpoint.size, proof, root, checkpoint.root)
        except ProofError as exc:
            raise _Bad(f"older proof from size {size}: {exc}") from None
        roots[size] = root
    return roots


def _previous(previous: str | None, keys: Sequence[VerifierKey], checkpoint: Checkpoint,
              report: Report) -> Checkpoint | None:
    if previous is None:
        return None
    try:
        prev = open_checkpoint(previous, keys)
    except NoteError as exc:
        raise _Bad(f"previous checkpoint: {exc}") from None
    if prev.origin != checkpoint.origin:
        raise _Bad(f"previous checkpoint is of log {prev.origin!r}, the export of "
                   f"{checkpoint.origin!r}")
    if prev.size > checkpoint.size:
        raise _Bad(f"previous checkpoint has size {prev.size}, the export's only "
                   f"{checkpoint.size}: the log was truncated (or the export is stale)")
    return prev


def _check_previous(prev: Checkpoint, root_in_range: bytes | None, older: dict[int, bytes],
                    checkpoint: Checkpoint, report: Report) -> None:
    where = f"previous checkpoint (size {prev.size})"
    root = root_in_range if root_in_range is not None else older.get(prev.size)
    if prev.size == checkpoint.size:
        root = checkpoint.root
    if root is None:
        raise _Bad(f"{where}: the export holds no proof from that size; export with "
                   f"--from {prev.size} or lower, or --consistency-from {prev.size}")
    if root != prev.root:
        raise _Bad(f"{where}: its root differs from the exported tree's at that size: the log "
                   f"was rewritten")
    report.checked.append(f"{where} consistent with the exported checkpoint")
