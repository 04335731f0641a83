"""Leases for once-only work (broker/store/leases.py): one holder at a time across processes,
and a dead holder's lease passes on once it expires."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from broker.store.leases import PostgresLeases, holder_id

REPO = Path(__file__).resolve().parents[3]
ROUNDS = 40  # critical sections per contender

CONTENDER = textwrap.dedent("""
    import asyncio, sys
    import asyncpg
    from broker.store.leases import PostgresLeases, holder_id

    async def main(url, rounds):
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        leases, me = PostgresLeases(pool), holder_id()
        held = overlaps = 0
        for _ in range(rounds * 50):
            if held >= rounds:
                break
            if await leases.acquire("outbox", me, 5.0) is None:
                await asyncio.sleep(0.002)
                continue
            inside = await pool.fetchval("UPDATE probe SET inside = inside + 1 RETURNING inside")
            overlaps += inside != 1
            await asyncio.sleep(0.003)  # the once-only work
            await pool.execute("UPDATE probe SET inside = inside - 1")
            await leases.release("outbox", me)
            held += 1
            await asyncio.sleep(0.001)  # let the other contender in
        print(held, overlaps, flush=True)
        await pool.close()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
""")

HOLDER = textwrap.dedent("""
    import asyncio, sys
    import asyncpg
    from broker.store.leases import PostgresLeases

    async def main(url):
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        assert await PostgresLeases(pool).acquire("purge", "doomed", float(sys.argv[2]))
        print("held", flush=True)
        await asyncio.Event().wait()  # hold on until killed

    asyncio.run(main(sys.argv[1]))
""")


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(postgres_url, min_size=1, max_size=2)
    yield p
    await p.close()


async def test_acquire_renew_release_and_tokens(pool: asyncpg.Pool) -> None:
    leases = PostgresLeases(pool)
    a, b = holder_id(), holder_id()
    assert a != b
    first = await leases.acquire("retention", a, 30)
    assert first is not None
    assert await leases.acquire("retention", a, 30) == first  # renewing keeps the token
    assert await leases.acquire("retention", b, 30) is None
    assert await leases.holder("retention") == a
    assert not await leases.release("retention", b)  # not b's to release
    assert await leases.release("retention", a)
    assert await leases.holder("retention") is None
    second = await leases.acquire("retention", b, 30)
    assert second == first + 1  # a new holder fences the old one out
    assert await leases.acquire("other", a, 30) is not None  # leases are independent
    with pytest.raises(ValueError):
        await leases.acquire("retention", b, 0)


async def test_two_processes_never_both_hold_it(pool: asyncpg.Pool, postgres_url: str) -> None:
    await pool.execute("CREATE TABLE probe (inside INTEGER NOT NULL)")
    await pool.execute("INSERT INTO probe VALUES (0)")
    try:
        procs = [subprocess.Popen([sys.executable, "-c", CONTENDER, postgres_url, str(ROUNDS)],
                                  cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
        outputs = [p.communicate(timeout=90) for p in procs]
    finally:
        await pool.execute("DROP TABLE probe")
    for (out, err), proc in zip(outputs, procs, strict=True):
        assert proc.returncode == 0, err.decode()
        held, overlaps = map(int, out.split())
        assert held == ROUNDS  # both got their turns
        assert overlaps == 0


async def test_a_dead_holders_lease_expires(pool: asyncpg.Pool, postgres_url: str) -> None:
    ttl = 1.0
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, postgres_url, str(ttl)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line == b"held\n", proc.stderr.read().decode() if proc.stderr else ""
        proc.kill()  # dies holding the lease: no release, no renewal
        proc.wait(timeout=10)
        leases = PostgresLeases(pool)
        killed = time.monotonic()
        assert await leases.acquire("purge", "heir", 30) is None  # not expired yet
        while await leases.acquire("purge", "heir", 30) is None:
            assert time.monotonic() - killed < ttl + 10, "the lease never expired"
            await asyncio.sleep(0.05)
        assert await leases.holder("purge") == "heir"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
