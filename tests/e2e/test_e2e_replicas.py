"""Stateless replicas: two real `cetate serve` processes on one PostgreSQL database, written and
read through both, give the same answers; `--workers 2` serves one port from two processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.process import free_port, spawn_serve, wait_healthy

REPO = Path(__file__).resolve().parents[2]
ENTITIES = "/ngsi-ld/v1/entities"


class Replica:
    def __init__(self, store: str, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = spawn_serve(self.port, store, *extra, cwd=REPO)

    def wait_ready(self) -> None:
        wait_healthy(self.proc, self.url, name="replica", timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[list[Replica]]:
    # Started together: both run the migrations check at once (the advisory lock decides).
    started = [Replica(postgres_url), Replica(postgres_url)]
    try:
        for r in started:
            r.wait_ready()
        yield started
    finally:
        for r in started:
            r.stop()


def lamp(n: int) -> dict[str, object]:
    return {"id": f"urn:ngsi-ld:Streetlight:replica-{n}", "type": "Streetlight",
            "powerState": {"type": "Property", "value": "off"},
            "count": {"type": "Property", "value": 0},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [23.79 + n * 1e-4, 44.31]}}}


async def test_two_replicas_one_database(replicas: list[Replica]) -> None:
    a, b = replicas
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as ha, \
            httpx.AsyncClient(base_url=b.url, timeout=10) as hb:
        clients = (ha, hb)
        # Creates alternate between replicas; a duplicate is refused whichever replica gets it.
        created = await asyncio.gather(*(clients[n % 2].post(ENTITIES, json=lamp(n))
                                         for n in range(20)))
        assert [r.status_code for r in created] == [201] * 20
        assert (await hb.post(ENTITIES, json=lamp(0))).status_code == 409

        # Concurrent increments of one attribute through both replicas: none is lost.
        async def bump(http: httpx.AsyncClient, value: int) -> int:
            r = await http.patch(f"{ENTITIES}/urn:ngsi-ld:Streetlight:replica-0/attrs/count",
                                 json={"value": value})
            return r.status_code
        assert set(await asyncio.gather(*(bump(clients[i % 2], i) for i in range(20)))) == {204}
        assert (await ha.post(f"{ENTITIES}/urn:ngsi-ld:Streetlight:replica-1/attrs",
                              json={"powerState": {"type": "Property", "value": "on"}})
                ).status_code == 204

        # Every read gives the same answer through either replica.
        for path, params in [
            (f"{ENTITIES}/urn:ngsi-ld:Streetlight:replica-1", {}),
            (ENTITIES, {"type": "Streetlight", "limit": "100"}),
            (ENTITIES, {"type": "Streetlight", "q": "powerState==\"on\""}),
            (ENTITIES, {"type": "Streetlight", "georel": "near;maxDistance==100",
                        "geometry": "Point", "coordinates": "[23.79,44.31]", "limit": "100"}),
        ]:
            ra, rb = await ha.get(path, params=params), await hb.get(path, params=params)
            assert ra.status_code == rb.status_code == 200, (ra.text, rb.text)
            assert ra.json() == rb.json()
        listed = (await hb.get(ENTITIES, params={"type": "Streetlight", "limit": "100"})).json()
        assert len(listed) == 20
        on = (await ha.get(ENTITIES, params={"type": "Streetlight",
                                             "q": "powerState==\"on\""})).json()
        assert [e["id"] for e in on] == ["urn:ngsi-ld:Streetlight:replica-1"]
        near = (await hb.get(ENTITIES, params={
            "type": "Streetlight", "georel": "near;maxDistance==100", "geometry": "Point",
            "coordinates": "[23.79,44.31]", "limit": "100"})).json()
        assert len(near) == 13  # 1e-4 degrees of longitude is 7.96 m here: 0..12 in 100 m

        # A tenant created through one replica exists for the other.
        made = await ha.post(ENTITIES, json=lamp(99), headers={"NGSILD-Tenant": "craiova"})
        assert made.status_code == 201
        got = await hb.get(f"{ENTITIES}/urn:ngsi-ld:Streetlight:replica-99",
                           headers={"NGSILD-Tenant": "craiova"})
        assert got.status_code == 200

        # Deleted through one, gone through the other.
        assert (await hb.delete(f"{ENTITIES}/urn:ngsi-ld:Streetlight:replica-5")
                ).status_code == 204
        assert (await ha.get(f"{ENTITIES}/urn:ngsi-ld:Streetlight:replica-5")).status_code == 404


async def test_workers_share_one_port(postgres_url: str) -> None:
    replica = Replica(postgres_url, "--workers", "2")
    try:
        replica.wait_ready()
        async with httpx.AsyncClient(base_url=replica.url, timeout=30) as http:
            created = await asyncio.gather(*(http.post(ENTITIES, json=lamp(n))
                                             for n in range(30)))
            assert {r.status_code for r in created} == {201}
            listed = await http.get(ENTITIES, params={"type": "Streetlight", "limit": "100"})
            assert len(listed.json()) == 30
        workers = subprocess.run(["pgrep", "-P", str(replica.proc.pid)], capture_output=True,
                                 text=True, check=False).stdout.split()
        assert len(workers) == 2
    finally:
        assert replica.stop() == 0  # SIGTERM to the supervisor stops every worker cleanly
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
