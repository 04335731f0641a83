"""The real `cetate serve` process: acknowledged writes survive SIGKILL; SIGTERM is graceful."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.process import SqliteBroker, sqlite_broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[SqliteBroker]:
    yield from sqlite_broker(tmp_path / "cetate.db")


def entity(n: int) -> dict[str, object]:
    return {"id": f"urn:ngsi-ld:ParkingSpot:craiova-{n}", "type": "ParkingSpot",
            "status": {"type": "Property", "value": "free"}}


async def write_until_killed(broker: SqliteBroker, kill_after: int) -> list[str]:
    """Write from 8 concurrent clients; SIGKILL the broker once `kill_after` writes are acked."""
    acked: list[str] = []
    counter = iter(range(100_000))
    limits = httpx.Limits(max_connections=8)

    async def worker(http: httpx.AsyncClient) -> None:
        for n in counter:
            try:
                r = await http.post("/ngsi-ld/v1/entities", json=entity(n))
            except httpx.HTTPError:
                return
            if r.status_code == 201:
                acked.append(entity(n)["id"])  # type: ignore[arg-type]
            if len(acked) >= kill_after and broker.proc and broker.proc.poll() is None:
                broker.proc.kill()

    async with httpx.AsyncClient(base_url=broker.url, limits=limits, timeout=5) as http:
        await asyncio.gather(*(worker(http) for _ in range(8)))
    return acked


async def test_acknowledged_writes_survive_sigkill(broker: SqliteBroker) -> None:
    broker.start()
    acked = await write_until_killed(broker, kill_after=300)
    assert broker.proc is not None
    broker.proc.wait(timeout=10)
    assert len(acked) >= 300
    broker.start()
    async with httpx.AsyncClient(base_url=broker.url, timeout=5) as http:
        missing = [i for i in acked
                   if (await http.get(f"/ngsi-ld/v1/entities/{i}")).status_code != 200]
    assert missing == []


async def test_sigterm_finishes_in_flight_requests(broker: SqliteBroker) -> None:
    broker.start()
    async with httpx.AsyncClient(base_url=broker.url, timeout=10) as http:
        pending = [asyncio.create_task(http.post("/ngsi-ld/v1/entities", json=entity(n)))
                   for n in range(50)]
        await asyncio.sleep(0.01)
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*pending, return_exceptions=True)
    assert broker.proc.wait(timeout=30) == 0
    created = [n for n, r in enumerate(results)
               if isinstance(r, httpx.Response) and r.status_code == 201]
    broker.start()
    async with httpx.AsyncClient(base_url=broker.url, timeout=5) as http:
        for n in created:
            got = await http.get(f"/ngsi-ld/v1/entities/{entity(n)['id']}")
            assert got.status_code == 200
