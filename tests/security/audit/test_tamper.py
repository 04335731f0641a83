"""Tampering with exports: every altered byte, dropped, swapped or truncated entry is detected.

A seeded loop over random logs and random ranges; each trial mutates one export and asserts
the offline verifier rejects it. The trial count is printed (pytest -s) and asserted.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from security.audit import export
from security.audit.export import build_export, encode, verify_export
from security.audit.note import VerifierKey
from tests.security.audit.conftest import FilledLog

LOGS = 12
BYTE_FLIPS_PER_EXPORT = 150


def _forgeries(raw: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Careful forgeries: the document edited and re-encoded canonically."""
    base = orjson.loads(raw)
    start, n = base["from"], len(base["entries"])

    def edited(change: Callable[[dict[str, Any]], None]) -> bytes:
        document = copy.deepcopy(base)
        change(document)
        return encode(document)

    drop = rng.randrange(n)

    def drop_renumbered(d: dict[str, Any]) -> None:
        del d["entries"][drop]
        for i, item in enumerate(d["entries"]):
            item["index"] = start + i
        d["to"] -= 1

    yield f"entry {drop} dropped, renumbered", edited(drop_renumbered)
    yield f"entry {drop} dropped", edited(lambda d: d["entries"].pop(drop))
    if n > 1:
        i, j = rng.sample(range(n), 2)

        def swap_bytes(d: dict[str, Any]) -> None:
            e = d["entries"]
            e[i]["entry"], e[j]["entry"] = e[j]["entry"], e[i]["entry"]

        def swap_items(d: dict[str, Any]) -> None:
            e = d["entries"]
            e[i], e[j] = e[j], e[i]

        def truncate(d: dict[str, Any], k: int = rng.randint(1, n - 1)) -> None:
            del d["entries"][n - k:]
            d["to"] -= k

        yield f"entry bytes {i} and {j} swapped", edited(swap_bytes)
        yield f"entries {i} and {j} swapped", edited(swap_items)
        yield "entries truncated", edited(truncate)


def _trials(log: FilledLog, rng: random.Random) -> int:
    size = log.storage.head().size
    start = rng.randrange(size)
    end = rng.randint(start + 1, size)
    note = log.notes[size]
    earlier = rng.choice(list(log.notes))
    raw = build_export(log.storage, note, start, end, [earlier])
    keys: list[VerifierKey] = [log.signer.verifier]
    assert verify_export(raw, keys).ok, verify_export(raw, keys).text()
    assert verify_export(raw, keys, previous=log.notes[earlier]).ok
    trials = 0

    def rejected(bad: bytes, what: str, previous: str | None = None) -> None:
        nonlocal trials
        trials += 1
        assert bad != raw, what
        assert not verify_export(bad, keys, previous).ok, f"undetected: {what}"

    for _ in range(BYTE_FLIPS_PER_EXPORT):
        at = rng.randrange(len(raw))
        new = rng.choice([b for b in range(256) if b != raw[at]])
        rejected(raw[:at] + bytes([new]) + raw[at + 1:], f"byte {at} -> {new}")
    for cut in sorted(rng.sample(range(len(raw)), 10)):
        rejected(raw[:cut], f"file truncated at {cut}")
    for what, forged in _forgeries(raw, rng):
        rejected(forged, what)
    # The log truncated: an export against an older, smaller head than one seen before.
    smaller = [s for s in log.notes if start <= s < size]
    if smaller:
        old = rng.choice(smaller)
        stale = build_export(log.storage, log.notes[old], start, old)
        assert verify_export(stale, keys).ok
        rejected(stale, f"log truncated to {old}", previous=note)
    return trials


def test_every_tampering_is_detected(filled_log: Callable[[int, int], FilledLog]) -> None:
    rng = random.Random(20261201)
    trials = sum(_trials(filled_log(rng.randint(2, 80), seed), rng) for seed in range(LOGS))
    print(f"\n{trials} tampering trials, all detected")
    assert trials >= LOGS * BYTE_FLIPS_PER_EXPORT


def test_an_export_from_another_key_or_rewritten_log_fails(
        filled_log: Callable[[int, int], FilledLog]) -> None:
    one, other = filled_log(20, 1), filled_log(20, 2)
    raw = build_export(one.storage, one.notes[20], 0, 20)
    report = verify_export(raw, [other.signer.verifier])
    assert not report.ok and "checkpoint signature" in report.failures[0]
    # Another log under the same key: its checkpoint is not consistent with this one's.
    other.signer = one.signer
    forged = other.sign()
    report = verify_export(raw, [one.signer.verifier], previous=forged)
    assert not report.ok and "rewritten" in report.text()


def test_base64_with_nonzero_padding_bits_is_rejected(
        filled_log: Callable[[int, int], FilledLog]) -> None:
    """'AB==' and 'AA==' decode alike; only the canonical text (unused bits zero) passes."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    log = filled_log(30, 7)
    raw = build_export(log.storage, log.notes[30], 0, 30)
    document = orjson.loads(raw)
    padded = [i for i, e in enumerate(document["entries"]) if e["entry"].endswith("=")]
    assert padded
    i = padded[0]
    text = document["entries"][i]["entry"]
    at = -3 if text.endswith("==") else -2
    bumped = alphabet[alphabet.index(text[at]) + 1]
    document["entries"][i]["entry"] = text[:at] + bumped + text[at + 1:]
    report = verify_export(encode(document), [log.signer.verifier])
    assert not report.ok and "non-canonical base64" in report.text()


def test_an_altered_entry_is_named_by_its_index(
        filled_log: Callable[[int, int], FilledLog]) -> None:
    """One entry's bytes changed (and re-encoded canonically): the report names its index and
    still proves the others included; a forged leaf hash alone is named too."""
    import base64

    log = filled_log(40, 11)
    raw = build_export(log.storage, log.notes[40], 5, 40)
    keys = [log.signer.verifier]
    for at in (5, 17, 39):
        document = orjson.loads(raw)
        item = document["entries"][at - 5]
        entry = bytearray(base64.b64decode(item["entry"]))
        entry[len(entry) // 2] ^= 0x01
        item["entry"] = base64.b64encode(bytes(entry)).decode()
        report = verify_export(encode(document), keys)
        assert not report.ok
        assert report.failures == [f"entry at index {at}: its bytes do not hash to its leaf "
                                   f"hash (the entry or its hash was altered)"]
        assert "34 entries of [5, 40) included in the signed tree" in report.text()
        document = orjson.loads(raw)
        document["entries"][at - 5]["hash"] = document["entries"][0 if at != 5 else 1]["hash"]
        report = verify_export(encode(document), keys)
        assert f"entry at index {at}: its bytes do not hash" in report.failures[0]
        assert "not the leaves of the signed tree" in report.text()


def test_checking_leaves_in_other_processes_reports_the_same(
        filled_log: Callable[[int, int], FilledLog], monkeypatch: pytest.MonkeyPatch) -> None:
    """A large export's leaves are checked by forked processes (`PARALLEL_MIN`): for a clean
    export and for every kind of tampering above, the report is word for word the serial
    one (same failure, at the same index, in the same order)."""
    rng = random.Random(20261203)
    log = filled_log(80, 5)
    raw = build_export(log.storage, log.notes[80], 3, 80)
    keys = [log.signer.verifier]
    variants = [raw] + [raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1:]
                        for at in rng.sample(range(len(raw)), 60)]
    variants += [forged for _, forged in _forgeries(raw, rng)]
    document = orjson.loads(raw)
    document["entries"][40]["hash"], document["entries"][9]["entry"] = \
        document["entries"][41]["hash"], document["entries"][8]["entry"]
    variants.append(encode(document))
    reports = {}
    for workers in (1, 2):
        monkeypatch.setattr(export, "_workers", lambda count, w=workers: w)
        reports[workers] = [verify_export(v, keys).text() for v in variants]
    assert reports[1] == reports[2]
    assert reports[1][0] == verify_export(raw, keys).text() and verify_export(raw, keys).ok
    assert sum("do not hash to its leaf hash" in r for r in reports[1]) >= 1
