"""Nothing acknowledged is lost: a writer process killed with SIGKILL mid-way loses no id it
printed (it prints an id only once `apply` has returned, that is after the commit)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from broker.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[3]
ACKS_BEFORE_KILL = 300
IN_FLIGHT = 32  # concurrent writes in the child, so the kill lands between group commits

WRITER = textwrap.dedent(f"""
    import asyncio, sys
    from broker.store.sqlite import SQLiteStore

    def entity(eid):
        t = "2026-11-23T10:00:00.000Z"
        return {{"id": eid, "type": ["https://example.org/Crash"], "createdAt": t,
                 "modifiedAt": t, "attrs": {{"https://example.org/n": [
                     {{"type": "Property", "value": 1}}]}}}}

    async def main(path):
        store = SQLiteStore(path)
        await store.open()

        async def write(n):
            eid = f"urn:ngsi-ld:Crash:{{n}}"
            await store.apply("", eid, lambda current: (entity(eid), None))
            sys.stdout.write(eid + "\\n")
            sys.stdout.flush()

        pending, n = set(), 0
        while True:  # until killed
            while len(pending) < {IN_FLIGHT}:
                pending.add(asyncio.ensure_future(write(n)))
                n += 1
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)

    asyncio.run(main(sys.argv[1]))
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acked: list[str] = []
    try:
        assert child.stdout is not None
        while len(acked) < ACKS_BEFORE_KILL:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"the writer died early: {child.stderr.read() if child.stderr else ''}")
            acked.append(line.strip())
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)  # acks printed before the kill landed
        acked += rest.split()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as conn:  # the killed process left a sound database (and a WAL)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = SQLiteStore(str(path))
    await store.open()
    try:
        found = {e["id"] for e in await store.get_entities("", acked)}
        assert set(acked) - found == set()
        stored = await store.read_sql("SELECT count(*) FROM entities")
        assert stored[0][0] >= len(set(acked))
    finally:
        await store.close()
