"""Which kept write facts a broker seals (security/audit/pending.py)."""

from __future__ import annotations

import os
import socket

from security.audit.entry import AuditRecord, Pseudonyms, decode, facts
from security.audit.pending import OTHER_AFTER_S, OWN_AFTER_S, instance_id, recovered, writer_dead

NOW = 1_796_187_600.0


def _row(row_id: int, instance: str, age: float) -> tuple[int, str, float, bytes]:
    record = AuditRecord(action="entity.create", tenant="craiova", entity_ids=[f"urn:e:{row_id}"])
    return row_id, instance, NOW - age, facts(record, "2026-12-02T05:00:00.000000Z", f"r{row_id}")


def test_only_dead_silent_or_stale_writers_facts_are_sealed() -> None:
    me = instance_id()
    host = socket.gethostname()
    rows = [_row(1, f"{host}:{2**22 + 4321}:gone", 0.1),  # this host, no such process
            _row(2, f"{host}:{os.getpid()}:other", 0.1),  # alive here, another broker
            _row(3, "elsewhere:7:x", 0.1),  # another host, young
            _row(4, "elsewhere:7:x", OTHER_AFTER_S + 1),  # another host, silent
            _row(5, me, OTHER_AFTER_S + 1),  # mine, its entry may still come
            _row(6, me, OWN_AFTER_S + 1)]  # mine, its entry never came
    sealed = recovered(rows, me, NOW, Pseudonyms(b"k" * 32))
    assert [s.pending for s in sealed] == [1, 4, 6]
    body = decode(sealed[0].entry)
    assert body["status"] is None and body["action"] == "entity.create"
    assert body["entities"]["ids"] == ["urn:e:1"] and body["tenant"] == "craiova"
    assert body["time"] == "2026-12-02T05:00:00.000000Z" and body["request"] == "r1"


def test_a_writer_is_dead_only_when_known_here() -> None:
    host = socket.gethostname()
    assert writer_dead(f"{host}:{2**22 + 4321}:x")
    assert not writer_dead(f"{host}:{os.getpid()}:x")
    assert not writer_dead("elsewhere:1:x") and not writer_dead("garbled")
