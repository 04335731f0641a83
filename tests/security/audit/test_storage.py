"""The SQLite audit storage and appender: one index per leaf across processes, erasure that
keeps the tree, deterministic entries, group commit."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
from collections.abc import Callable
from pathlib import Path

from security.audit.entry import AuditRecord, Principal, Pseudonyms, decode, encode, opens, seal
from security.audit.log import AuditLog, config_for
from security.audit.merkle import leaf_hash, root
from security.audit.note import open_checkpoint
from security.audit.sqlite_log import SQLiteAuditStorage
from tests.security.audit.conftest import FilledLog, random_entry

PROCESSES = 3
BATCHES_PER_PROCESS = 40


def _append_from_process(path: str, seed: int) -> None:
    storage = SQLiteAuditStorage(path)
    storage.open()
    rng = random.Random(seed)
    pseudonyms = Pseudonyms(b"p" * 32)
    for n in range(BATCHES_PER_PROCESS):
        storage.append([random_entry(rng, pseudonyms, seed * 10_000 + n * 10 + i)
                        for i in range(rng.randint(1, 5))])
    storage.close()


def test_processes_appending_to_one_file_never_share_an_index(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.db")
    SQLiteAuditStorage(path).open()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_from_process, args=(path, s)) for s in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    storage = SQLiteAuditStorage(path)
    head = storage.head()
    rows = storage.entries(0, head.size)
    assert [i for i, _ in rows] == list(range(head.size))
    requests = [decode(e)["request"] for _, e in rows]
    assert len(set(requests)) == len(requests)  # nothing lost, nothing written twice
    assert head.root() == root([leaf_hash(e) for _, e in rows])
    storage.close()


def test_entries_are_canonical_and_erasure_keeps_the_tree(
        filled_log: Callable[[int, int], FilledLog]) -> None:
    pseudonyms = Pseudonyms(b"x" * 32)
    record = AuditRecord(action="entity.retrieve", principal=Principal("ana", ("clerk",)))
    record.note(entity_ids=["urn:a", "urn:b", "urn:a"], types=["T"])
    record.personal["client"] = "192.0.2.7"
    a = seal(record, time="t", request_id="r", status=200, pseudonyms=pseudonyms)
    body = decode(a.entry)
    assert encode(body) == a.entry  # sorted keys, compact: the encoding is a fixed point
    assert body["entities"]["ids"] == ["urn:a", "urn:b"]
    assert body["principal"] == {"subject": pseudonyms("ana"), "roles": ["clerk"]}
    assert b"ana" not in a.entry and b"192.0.2.7" not in a.entry
    assert all(opens(a.entry, d) for d in a.details)
    b = seal(record, time="t", request_id="r", status=200, pseudonyms=pseudonyms)
    assert a.entry != b.entry  # fresh salts: equal facts do not give linkable commitments

    log = filled_log(30, 5)
    log.storage.append([a])
    idx = log.storage.head().size - 1
    head_before = log.storage.head().root()
    assert {d.name for d in log.storage.details(idx)} == {"client", "subject"}
    assert log.storage.erase_subject(pseudonyms("ana")) == 1  # entries whose details went
    assert log.storage.details(idx) == []
    assert log.storage.head().root() == head_before
    assert log.storage.entries(idx, idx + 1) == [(idx, a.entry)]


async def test_group_commit_and_checkpoints(tmp_path: Path) -> None:
    audit = AuditLog(config_for(f"sqlite:///{tmp_path}/cetate.db",
                                audit_store=str(tmp_path / "audit.db")), interval=0.05)
    await audit.open()
    try:
        rng = random.Random(3)
        sealed = [random_entry(rng, audit.pseudonyms, n) for n in range(300)]
        indices = await asyncio.gather(*(audit.append(s) for s in sealed))
        assert sorted(indices) == list(range(300))
        keys = audit.verifier_keys()
        # the ticker signs a head without being asked once entries arrived
        for _ in range(100):
            latest = await audit._read(audit.storage.latest_checkpoint)
            if latest and latest[0] == 300:
                break
            await asyncio.sleep(0.02)
        assert latest is not None and latest[0] == 300
        audit.submit(random_entry(rng, audit.pseudonyms, 300))  # a read: not awaited
        assert open_checkpoint(await audit.checkpoint(), keys).size == 301
        assert (tmp_path / "audit.db").exists() and (tmp_path / "audit-keys").is_dir()
    finally:
        await audit.close()


def test_sealed_entries_are_canonical_and_queries_filter_exactly(tmp_path: Path) -> None:
    """seal builds its body with keys already in order: the bytes are what the canonical
    encoding gives. And a query over bundles (narrowed by substring, then filtered) returns
    exactly the entries a scan of every entry's facets selects."""
    from security.audit.log import EntryQuery
    from security.audit.sqlite_log import SQLiteAuditStorage
    from tests.security.audit.conftest import random_entry

    rng = random.Random(3)
    pseudonyms = Pseudonyms(b"p" * 32)
    sealed = [random_entry(rng, pseudonyms, n) for n in range(600)]
    assert all(encode(decode(s.entry)) == s.entry for s in sealed)
    storage = SQLiteAuditStorage(tmp_path / "audit.db")
    storage.open()
    try:
        for at in range(0, len(sealed), 37):  # bundles of 37 (and a last, shorter one)
            storage.append(sealed[at:at + 37])
        subject = sealed[5].facets[1]
        for q in (EntryQuery(limit=1000), EntryQuery(tenant="tax", limit=1000),
                  EntryQuery(subject=subject, action=sealed[5].facets[3], limit=1000),
                  EntryQuery(entity="urn:ngsi-ld:ParkingSpot:7", limit=1000),
                  EntryQuery(since="2026-12-01T10:03:00", until="2026-12-01T10:05:30",
                             purpose="billing", limit=1000),
                  EntryQuery(decision="deny", limit=1000),
                  EntryQuery(tenant="parking", after=100, limit=25)):
            expected = [(i, s.entry) for i, s in enumerate(sealed)
                        if i >= q.after
                        and (q.since is None or s.facets[0] >= q.since)
                        and (q.until is None or s.facets[0] < q.until)
                        and all(getattr(q, name) is None or s.facets[at] == getattr(q, name)
                                for name, at in (("subject", 1), ("tenant", 2), ("action", 3),
                                                 ("purpose", 4), ("decision", 5)))
                        and (q.entity is None or q.entity in s.facets[7])][:q.limit]
            assert storage.query(q) == expected, q
        assert storage.entries(30, 80) == [(i, s.entry) for i, s in enumerate(sealed)
                                           if 30 <= i < 80]
    finally:
        storage.close()
