"""SIGKILL the real `cetate serve` during a write stream; after a restart the tree is consistent
with every checkpoint fetched before the kill, and every acknowledged write has its entry. On
the selected store engine (--store-engine): SQLite keeps a write's audit facts in its group
transaction, PostgreSQL in the write's first statement."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from security.audit.entry import decode
from security.audit.merkle import verify_consistency
from security.audit.note import Checkpoint, open_checkpoint, parse_verifier_keys
from tests.process import ServedBroker, served

KILL_AFTER = 200  # acknowledged writes before the SIGKILL
WRITERS = 6
CHECKPOINT_EVERY = 20  # acknowledged writes between two checkpoint fetches
RECOVERY_TICKS = 30  # half-second looks for the sealing of kept facts after the restart


@pytest.fixture
def broker(test_store_url: str, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedBroker]:
    # keys beside a SQLite store; a PostgreSQL one would put them in ./data
    monkeypatch.setenv("CETATE_AUDIT_KEY_DIR", str(tmp_path / "audit-keys"))
    yield from served(ServedBroker(test_store_url))


async def _stream_then_kill(broker: ServedBroker) -> tuple[list[str], list[str]]:
    acked: list[str] = []
    notes: list[str] = []
    counter = iter(range(100_000))
    killed = asyncio.Event()
    tick = asyncio.Event()

    async def writer(http: httpx.AsyncClient) -> None:
        for n in counter:
            eid = f"urn:ngsi-ld:Streetlight:craiova-{n}"
            try:
                r = await http.post("/ngsi-ld/v1/entities", json={"id": eid, "type": "Lamp"})
            except httpx.HTTPError:
                return
            if r.status_code == 201:
                acked.append(eid)
                if len(acked) % CHECKPOINT_EVERY == 0:
                    tick.set()
            if len(acked) >= KILL_AFTER and not killed.is_set():
                assert broker.proc is not None
                broker.proc.kill()
                killed.set()
                tick.set()

    async def watcher(http: httpx.AsyncClient) -> None:
        while not killed.is_set():
            await tick.wait()
            tick.clear()
            try:
                r = await http.get("/cetate/v1/audit/checkpoint")
            except httpx.HTTPError:
                return
            if r.status_code == 200:
                notes.append(r.text)

    async with httpx.AsyncClient(base_url=broker.url, timeout=5,
                                 limits=httpx.Limits(max_connections=WRITERS + 1)) as http:
        await asyncio.gather(watcher(http), *(writer(http) for _ in range(WRITERS)))
    return acked, notes


async def test_sigkill_keeps_the_tree_consistent_and_acknowledged_writes_logged(
        broker: ServedBroker) -> None:
    broker.start()
    keys = parse_verifier_keys(httpx.get(broker.url + "/cetate/v1/audit/public-key").text)
    acked, notes = await _stream_then_kill(broker)
    assert broker.proc is not None
    broker.proc.wait(timeout=10)
    assert len(acked) >= KILL_AFTER and len(notes) >= 2
    seen = [open_checkpoint(n, keys) for n in notes]

    broker.start()
    async with httpx.AsyncClient(base_url=broker.url, timeout=10) as http:
        head = open_checkpoint((await http.get("/cetate/v1/audit/checkpoint")).text, keys)
        assert head.size >= max(c.size for c in seen)
        for old in {c.size: c for c in seen}.values():
            await _check_consistent(http, old, head)
        # Writes answered just before the kill may have only their facts kept (audit_pending):
        # the restarted broker seals those within a tick or two, with status null.
        for _ in range(RECOVERY_TICKS):
            logged, recovered = await _logged(http, head.size)
            missing = [eid for eid in acked if eid not in logged]
            if not missing:
                break
            await asyncio.sleep(0.5)
            head = open_checkpoint((await http.get("/cetate/v1/audit/checkpoint")).text, keys)
        assert missing == []
        for eid in recovered:  # each a write the broker committed (answered or not)
            assert (await http.get(f"/ngsi-ld/v1/entities/{eid}")).status_code == 200
        for old in {c.size: c for c in seen}.values():
            await _check_consistent(http, old, head)


async def _logged(http: httpx.AsyncClient, size: int) -> tuple[set[str], set[str]]:
    """Ids of the entities whose creation the first `size` entries record (status 201), and
    of those recovered from kept facts (status null)."""
    logged: set[str] = set()
    recovered: set[str] = set()
    start = 0
    while start < size:
        body = (await http.get("/cetate/v1/audit/entries",
                               params={"from": start, "to": size})).json()
        for item in body["entries"]:
            entry = decode(base64.b64decode(item["entry"]))
            if entry["action"] == "entity.create" and entry["status"] in (201, None):
                logged.update(entry["entities"]["ids"])
                if entry["status"] is None:
                    recovered.update(entry["entities"]["ids"])
        start = body["to"]
    return logged, recovered


async def _check_consistent(http: httpx.AsyncClient, old: Checkpoint, head: Checkpoint) -> None:
    r = await http.get("/cetate/v1/audit/proof/consistency",
                       params={"first": old.size, "second": head.size})
    assert r.status_code == 200, r.text
    proof = [base64.b64decode(h) for h in r.json()["proof"]]
    verify_consistency(old.size, head.size, proof, old.root, head.root)
