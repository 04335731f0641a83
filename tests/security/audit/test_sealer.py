"""The sealing process (security/audit/sealer.py): records sealed and bundled in a real child
process, in order; a child that dies or never starts loses nothing."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import orjson
import pytest

from security.audit import entry as entry_module
from security.audit import sealer as sealing
from security.audit.bundles import Built, build
from security.audit.entry import (
    AuditRecord,
    Deferred,
    Principal,
    Pseudonyms,
    decode,
    entry_text,
    entry_time,
    facts,
    from_facts,
    opens,
    seal,
)
from security.audit.export import verify_export
from security.audit.log import SEAL_BATCH, AuditLog, config_for
from security.audit.merkle import HASH_SIZE, leaf_hash
from security.audit.sealer import Sealer, Wire, seal_wires, wire

KEY = b"k" * 32


def records(start: int, count: int) -> list[Wire]:
    out = []
    for n in range(start, start + count):
        record = AuditRecord(action="entity.retrieve", tenant="craiova",
                             principal=Principal(f"clerk-{n % 3}", ("clerk",)), purpose="tax")
        record.note(entity_ids=[f"urn:ngsi-ld:Spot:{n}"], types=["ParkingSpot"])
        record.personal["client"] = "192.0.2.7"
        out.append(wire(record, f"2026-12-02T05:00:00.{n:06d}Z", f"req-{n}", 200,
                        pending=n if n % 2 else None))
    return out


def requests_of(built: Built) -> list[str]:
    sizes = [len(e) for e in _entries(built)]
    assert sum(sizes) == len(built.entries)
    return [decode(e)["request"] for e in _entries(built)]


def _entries(built: Built) -> list[bytes]:
    out, at = [], 0
    for size in orjson.loads(built.sizes):
        out.append(built.entries[at:at + size])
        at += size
    return out


def test_a_batch_seals_to_one_bundle_of_its_records_in_order() -> None:
    pseudonyms = Pseudonyms(KEY)
    built = seal_wires(records(0, 5), pseudonyms)
    entries = _entries(built)
    assert built.length == 5 and requests_of(built) == [f"req-{n}" for n in range(5)]
    assert built.hashes == b"".join(leaf_hash(e) for e in entries)
    assert len(built.hashes) == 5 * HASH_SIZE
    assert built.pending == (1, 3)  # the kept write facts its append deletes
    body = decode(entries[0])
    assert body["principal"] == {"subject": pseudonyms("clerk-0"), "roles": ["clerk"]}
    assert b"clerk-0" not in built.entries and b"192.0.2.7" not in built.entries
    assert built.kept is not None and b"192.0.2.7" in built.kept  # deletable, apart


class _Stream:
    """A salt pool giving the next bytes of one fixed stream, however they are asked for."""

    def __init__(self) -> None:
        self._data, self._at = bytes(range(256)) * 64, 0

    def take(self, n: int) -> bytes:
        out = self._data[self._at:self._at + n]
        self._at += n
        return out


def test_a_batch_seals_to_the_bytes_of_its_records_sealed_one_by_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`seal_wires` is a one-pass `build([seal(...) ...])`: the same bundle from the same salts,
    for records with and without personal details, roles, purpose, masks, several entities."""
    wires = records(0, 6)
    odd = AuditRecord(action="batch.upsert", tenant="t", principal=Principal("b", ("z", "a")),
                      masked=["iban"], personal={"subject": "override", "email": "x@y.ro"})
    odd.note(entity_ids=["urn:a", "urn:b", "urn:a"], types=["T"])
    wires += [wire(odd, 1796187600.5, "req-odd", None, 9), wire(AuditRecord(), "t0", "r", 500)]
    pseudonyms = Pseudonyms(KEY)
    monkeypatch.setattr(entry_module, "_SALTS", _Stream())
    one_pass = seal_wires(wires, pseudonyms)
    monkeypatch.setattr(entry_module, "_SALTS", _Stream())
    rows = [orjson.loads(w) for w in wires]
    one_by_one = build([seal(AuditRecord(action=w[4], tenant=w[5],
                                         principal=Principal(w[6], tuple(w[7])),
                                         purpose=w[8], decision=w[9], rule=w[10],
                                         entity_ids=w[11], entity_types=w[12], masked=w[13],
                                         personal=w[14]),
                             time=entry_time(w[0]), request_id=w[1], status=w[2],
                             pseudonyms=pseudonyms, pending=w[3]) for w in rows])
    assert one_pass == one_by_one


async def _running(s: Sealer) -> None:
    s.seal(records(0, 1))  # no child yet: sealed here, and one is started
    for _ in range(200):
        if s._proc is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the sealing process did not start")


async def test_batches_are_sealed_in_the_child_and_delivered_in_order() -> None:
    got: list[Built] = []
    s = Sealer(KEY, got.append)
    try:
        await _running(s)
        for b in range(4):
            s.seal(records(1 + b * 10, 10))
        await s.drain()
        assert s.batches_sealed == 4
        # the child runs below the broker's priority: it yields the CPU to requests
        assert s._proc is not None
        assert os.getpriority(os.PRIO_PROCESS, s._proc.pid) == min(
            19, os.getpriority(os.PRIO_PROCESS, 0) + sealing.SEALER_NICE)
        # and its answers' pipe holds a whole batch's answer (one read on the loop, not four)
        pipe = s._proc._transport.get_pipe_transport(1).get_extra_info("pipe")  # type: ignore[attr-defined]
        if int(Path("/proc/sys/fs/pipe-max-size").read_text()) >= sealing.PIPE_BYTES:
            assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == sealing.PIPE_BYTES
        assert [r for built in got for r in requests_of(built)] == [f"req-{n}"
                                                                    for n in range(41)]
        # sealed with the same pseudonym key as here
        assert decode(_entries(got[1])[0])["principal"]["subject"] == Pseudonyms(KEY)("clerk-1")
    finally:
        await s.close()
    assert s._proc is None


async def test_a_child_that_dies_loses_no_batch(caplog: pytest.LogCaptureFixture) -> None:
    got: list[Built] = []
    s = Sealer(KEY, got.append)
    try:
        await _running(s)
        assert s._proc is not None
        s._proc.kill()
        for b in range(3):  # handed over to a child that is dying or dead
            s.seal(records(1 + b * 10, 10))
        await s.drain()
        s.seal(records(31, 10))  # after its death: sealed here
        assert [r for built in got for r in requests_of(built)] == [f"req-{n}"
                                                                    for n in range(41)]
        assert "sealing process stopped" in caplog.text
    finally:
        await s.close()


async def test_a_child_that_cannot_start_leaves_sealing_here(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sealing.sys, "executable", "/nonexistent/python")
    got: list[Built] = []
    s = Sealer(KEY, got.append)
    try:
        for b in range(3):
            s.seal(records(b * 10, 10))
            await asyncio.sleep(0.05)
        await s.drain()
        assert s._proc is None and s.batches_sealed == 0
        assert [r for built in got for r in requests_of(built)] == [f"req-{n}"
                                                                    for n in range(30)]
        assert "could not start" in caplog.text
    finally:
        await s.close()


async def test_an_audit_log_seals_full_batches_in_the_child(tmp_path: Path) -> None:
    """Records a full batch at a time go to the child; the tree over them verifies, and each
    entry opens its kept details."""
    audit = AuditLog(config_for(f"sqlite:///{tmp_path}/cetate.db",
                                audit_store=str(tmp_path / "audit.db")), interval=0.05)
    await audit.open()
    try:
        assert audit._sealer is not None
        await _running(audit._sealer)
        total = 5 * SEAL_BATCH + 7
        for n in range(total):
            record = AuditRecord(action="entity.retrieve", principal=Principal("ana"))
            record.note(entity_ids=[f"urn:ngsi-ld:Spot:{n}"])
            audit.record(record, time=f"2026-12-02T05:00:00.{n:06d}Z", request_id=f"n{n}",
                         status=200)
        await audit.flush()
        assert audit._sealer.batches_sealed == 6  # five full, and the flush's short one
        size = (await audit.head()).size
        rows = await audit.entries(0, size)
        requests = [decode(e)["request"] for _, e in rows]
        assert sorted(r for r in requests if r.startswith("n")) == sorted(
            f"n{n}" for n in range(total))  # each once
        idx = next(i for i, e in rows if decode(e)["request"] == "n100")
        assert all(opens(rows[idx][1], d) for d in await audit._read(audit.storage.details,
                                                                     idx))
        report = verify_export(await audit.export(0), audit.verifier_keys())
        assert report.ok, report
    finally:
        await audit.close()


def test_a_records_unix_time_is_formatted_when_sealed() -> None:
    """Requests hand over time.time(); the entry holds the UTC time with microseconds."""
    record = AuditRecord(action="entity.retrieve")
    built = seal_wires([wire(record, 1796187600.25, "req-t", 200)], Pseudonyms(KEY))
    assert decode(_entries(built)[0])["time"] == "2026-12-02T05:00:00.250000Z"


def test_text_an_entry_cannot_hold_becomes_replacement_characters() -> None:
    assert entry_text("craiova") == "craiova" and entry_text("Brașov") == "Brașov"
    assert entry_text("caf\udce9") == "caf\ufffd"  # aiohttp's surrogateescape of b"caf\xe9"
    assert entry_text("a\ud800b") == "a?b"  # a surrogate that escapes no byte
    record = AuditRecord(action="entity.retrieve", tenant=entry_text("caf\udce9"))
    built = seal_wires([wire(record, 1796187600.0, "req-u", 400)], Pseudonyms(KEY))
    assert decode(_entries(built)[0])["tenant"] == "caf\ufffd"


def _unsealable(request_id: str) -> Wire:
    """A record of the wrong shape (personal details as a list): what only a bug could make."""
    return orjson.dumps(("2026-12-02T05:00:00.000000Z", request_id, 200, None, "entity.retrieve",
                         "", "ana", [], None, "allow", "open-default", [], [], [], ["x"]))


def test_a_record_that_cannot_be_sealed_is_left_out_not_its_batch(
        caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(TypeError):
        seal_wires([_unsealable("req-bad")], Pseudonyms(KEY))
    got: list[Built] = []
    sealing.seal_batch([*records(0, 2), _unsealable("req-bad"), *records(2, 2)],
                       Pseudonyms(KEY), got.append)
    assert len(got) == 1 and requests_of(got[0]) == [f"req-{n}" for n in range(4)]
    assert "request req-bad is lost" in caplog.text and "ana" not in caplog.text
    sealing.seal_batch([_unsealable("req-bad")], Pseudonyms(KEY), got.append)
    assert len(got) == 1  # nothing to deliver


async def test_a_batch_that_kills_the_child_holds_up_no_other(
        caplog: pytest.LogCaptureFixture) -> None:
    """The child dies on the record it cannot seal; the broker seals that batch without it,
    and every batch after it, in order."""
    got: list[Built] = []
    s = Sealer(KEY, got.append)
    try:
        await _running(s)
        s.seal([*records(1, 5), _unsealable("req-bad"), *records(6, 5)])
        s.seal(records(11, 10))
        await s.drain()
        assert [r for built in got for r in requests_of(built)] == [f"req-{n}"
                                                                    for n in range(21)]
        assert "request req-bad is lost" in caplog.text
    finally:
        await s.close()


def test_a_record_with_strings_json_cannot_hold_is_still_sealed() -> None:
    """A lone surrogate (what a request's undecodable bytes become) in any field is recorded
    as U+FFFD, on the batch path and the one-by-one path alike, rather than failing."""
    odd = "urn:ngsi-ld:X:\udcff"
    record = AuditRecord(action="entity.retrieve", tenant="t\ud800", entity_ids=[odd],
                         personal={"client": "\udc80"})
    built = seal_wires([wire(record, 1796187600.5, "req-s", 200)], Pseudonyms(KEY))
    body = decode(_entries(built)[0])
    assert body["entities"]["ids"] == ["urn:ngsi-ld:X:\ufffd"]
    assert body["tenant"] == entry_text("t\ud800")  # a surrogate escaping no byte: "?"
    assert built.kept is not None and "\ufffd" in built.kept.decode()
    assert "\ufffd" in built.facets.decode()
    alone = Deferred(record, "2026-12-03T10:00:00.000000Z", "req-s", 200, Pseudonyms(KEY))
    assert decode(alone.seal().entry)["entities"]["ids"] == ["urn:ngsi-ld:X:\ufffd"]
    assert from_facts(facts(record, "t", "r"))[0].personal == {"client": "\ufffd"}
