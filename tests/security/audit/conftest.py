"""Builders for audit-log tests: a real SQLite audit storage filled with sealed entries."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.settings import Settings
from security.audit.entry import AuditRecord, Principal, Pseudonyms, Sealed, seal
from security.audit.merkle import leaf_hash
from security.audit.note import Checkpoint, NoteSigner, sign_checkpoint
from security.audit.sqlite_log import SQLiteAuditStorage

ORIGIN = "cetate.test/audit"
ACTIONS = ("entity.create", "entity.retrieve", "entity.query", "batch.upsert")


def random_entry(rng: random.Random, pseudonyms: Pseudonyms, n: int) -> Sealed:
    record = AuditRecord(action=rng.choice(ACTIONS), tenant=rng.choice(("", "tax", "parking")),
                         principal=Principal(rng.choice(("public", "ana", "ion")),
                                             ("operator",) if n % 3 else ()),
                         purpose=rng.choice((None, "billing", "enforcement")))
    record.note(entity_ids=[f"urn:ngsi-ld:ParkingSpot:{rng.randrange(50)}"],
                types=["ParkingSpot"])
    record.personal["client"] = f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"
    return seal(record, time=f"2026-12-01T10:{n // 60 % 60:02d}:{n % 60:02d}.000000Z",
                request_id=f"req-{n}", status=rng.choice((200, 201, 204, 404)),
                pseudonyms=pseudonyms)


@dataclass
class FilledLog:
    storage: SQLiteAuditStorage
    signer: NoteSigner
    notes: dict[int, str]  # size -> signed checkpoint, one per append batch

    def sign(self) -> str:
        head = self.storage.head()
        note = sign_checkpoint(Checkpoint(ORIGIN, head.size, head.root()), self.signer)
        self.storage.add_checkpoint(head.size, note)
        self.notes[head.size] = note
        return note


@pytest.fixture
def filled_log(tmp_path: Path) -> Iterator[Callable[[int, int], FilledLog]]:
    """make(entries, seed): a log of that many random entries appended in random batches,
    a checkpoint signed after each batch."""
    made: list[SQLiteAuditStorage] = []

    def make(entries: int, seed: int = 0) -> FilledLog:
        rng = random.Random(seed)
        storage = SQLiteAuditStorage(tmp_path / f"audit-{seed}-{len(made)}.db",
                                     synchronous="OFF")
        storage.open()
        made.append(storage)
        log = FilledLog(storage, NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), {})
        pseudonyms = Pseudonyms(b"k" * 32)
        n = 0
        while n < entries:
            batch = [random_entry(rng, pseudonyms, n + i)
                     for i in range(min(entries - n, rng.randint(1, 9)))]
            storage.append(batch)
            n += len(batch)
            log.sign()
        if entries == 0:
            log.sign()
        return log

    yield make
    for storage in made:
        storage.close()


@pytest.fixture
def settings(test_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """tests/conftest.py's settings, but with the log in the store's own database on either
    engine (as the broker runs): only the keys go to tmp_path (and to the environment, where
    `cetate audit` commands run by the test look for them)."""
    keys = str(tmp_path / "audit-keys")
    monkeypatch.delenv("CETATE_AUDIT_STORE", raising=False)
    monkeypatch.setenv("CETATE_AUDIT_KEY_DIR", keys)
    return Settings(store=test_store_url, allowed_networks=("127.0.0.0/8",),
                    max_body_bytes=1_000_000, log_level="WARNING", audit_key_dir=keys)


EXTRA_ENTITY = "urn:ngsi-ld:X:extra"


def old_leaves(n: int = 3) -> list[tuple[Any, ...]]:
    """Rows of audit_leaves as the version before bundles wrote them (both engines: the
    upgrade tests): entry i is user-i's read of urn:ngsi-ld:X:i and of EXTRA_ENTITY, whose
    audit_entities row (EXTRA_ENTITY, i) goes with it. Row[1] is the entry's bytes."""
    pseudonyms = Pseudonyms(b"k" * 32)
    rows = []
    for i in range(n):
        record = AuditRecord(action="entity.retrieve", tenant="t",
                             principal=Principal(f"user-{i}"))
        record.note(entity_ids=[f"urn:ngsi-ld:X:{i}", EXTRA_ENTITY], types=["X"])
        sealed = seal(record, time=f"2026-12-01T10:00:0{i}.000000Z", request_id=f"r{i}",
                      status=200, pseudonyms=pseudonyms)
        kept = orjson.dumps([[d.name, d.salt.hex(), d.value] for d in sealed.details])
        rows.append((i, sealed.entry, leaf_hash(sealed.entry), *sealed.facets[:7],
                     f"urn:ngsi-ld:X:{i}", kept))
    return rows
