"""Adapters, simulator to broker: records/s of each adapter at the SDK's batch size, against
the raw batch upsert of the same kind of entities, pre-built, in the same run.

    .venv/bin/python -m bench.adapters [--records 4000] [--sizes 10,50,100,250,500,1000]

One real `cetate serve` (SQLite, a fresh file) is started by the bench. Figures:
- baseline: POST /ngsi-ld/v1/entityOperations/upsert of pre-built Vehicle entities, one batch
  after another, at each batch size (entities/s: what the broker takes at best);
- sdk: the same entities coming through the whole SDK (a JSON-lines file -> parse -> map ->
  pseudonymise -> validate -> upsert -> checkpoint) at each batch size, as a ratio of the
  baseline at that size: the SDK's own cost;
- each adapter (example, lighting, parking, ticketing, tax) with its own simulator
  (`run --simulate`) at the SDK's batch size: source records handled per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from adapters import registry
from adapters.sdk import Adapter, Config, Entity, Pseudonymise, Raw
from adapters.sdk.errors import AdapterError
from adapters.sdk.example import SDM_TRANSPORTATION
from adapters.sdk.run import BATCH_SIZE, Options, run, run_simulated
from adapters.sdk.sources import Files
from bench.common import free_port, start

UPSERT = "/ngsi-ld/v1/entityOperations/upsert"
ADAPTERS = ("example", "lighting", "parking", "ticketing", "tax")


def vehicle(run_id: str, n: int, plate: str) -> Entity:
    return {"id": f"urn:ngsi-ld:Vehicle:bench-{run_id}-{n:07d}", "type": "Vehicle",
            "vehicleType": {"type": "Property", "value": "bus"},
            "category": {"type": "Property", "value": ["public", "tracked"]},
            "location": {"type": "GeoProperty", "value": {
                "type": "Point", "coordinates": [23.7965 + n % 100 * 1e-4, 44.3190]}},
            "vehiclePlateIdentifier": {"type": "Property", "value": plate},
            "speed": {"type": "Property", "value": n % 50, "unitCode": "KMH"},
            "@context": SDM_TRANSPORTATION}


class BenchReadings(Adapter):
    """The SDK path of the baseline's entities: JSON lines -> the same Vehicles."""

    name = "bench-readings"
    context = SDM_TRANSPORTATION

    def source(self, config: Config) -> Files:
        return Files(config["path"])

    def parse(self, raw: Raw) -> Iterable[dict[str, Any]]:
        return [raw.data]

    def map(self, record: dict[str, Any], pseudonymise: Pseudonymise) -> Iterable[Entity]:
        entity = vehicle(record["run"], record["n"], pseudonymise("plate", record["plate"]))
        del entity["@context"]
        yield entity


async def baseline(url: str, run_id: str, records: int, size: int) -> float:
    bodies = [json.dumps([vehicle(run_id, n, "0" * 64) for n in range(i, min(i + size, records))])
              for i in range(0, records, size)]
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 headers={"Content-Type": "application/ld+json"}) as http:
        started = time.perf_counter()
        for body in bodies:
            response = await http.post(UPSERT, content=body)
            assert response.status_code in (201, 204), response.text[:300]
        return records / (time.perf_counter() - started)


async def through_sdk(url: str, run_id: str, records: int, size: int, work: Path) -> float:
    path = work / f"{run_id}.jsonl"
    path.write_text("".join(json.dumps({"run": run_id, "n": n, "plate": f"DJ{n:05d}"}) + "\n"
                            for n in range(records)))
    options = Options(broker=url, state_dir=work / run_id, batch_size=size)
    started = time.perf_counter()
    counters = await run(BenchReadings(), {"path": str(path)}, options)
    assert counters.published == records, counters
    return records / (time.perf_counter() - started)


async def adapter_rate(url: str, name: str, records: int, work: Path) -> str:
    try:
        adapter = registry.load(name)()
    except (AdapterError, ImportError) as exc:
        return f"{name:<12} not available ({exc})"
    options = Options(broker=url, state_dir=work / f"adapter-{name}", limit=records,
                      simulate=True, write_back=False)
    started = time.perf_counter()
    try:
        counters = await asyncio.wait_for(run_simulated(adapter, {}, options), 300)
    except Exception as exc:  # one adapter failing must not hide the others' figures
        return f"{name:<12} failed: {exc!r}"[:200]
    elapsed = time.perf_counter() - started
    return (f"{name:<12} {counters.read / elapsed:9.0f} records/s  ({counters.read} records, "
            f"{counters.published} entities published, {counters.rejected} dead-lettered, "
            f"{elapsed:.1f} s)")


async def main(records: int, sizes: list[int]) -> None:
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("CETATE_ADAPTER_SECRET", "bench-only-pseudonym-key-0123456789")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        broker = start(["-m", "broker", "serve", "--port", str(port), "--store",
                        f"sqlite:///{work}/bench.db"], port, {"CETATE_LOG_LEVEL": "WARNING"})
        try:
            await baseline(url, "warmup", 500, 100)
            print(f"{records} Vehicle entities per figure; the SDK's batch size is {BATCH_SIZE}")
            print(f"{'batch':>6} {'raw upsert':>14} {'through the SDK':>18} {'ratio':>7}")
            for size in sizes:
                raw = await baseline(url, f"raw{size}", records, size)
                sdk = await through_sdk(url, f"sdk{size}", records, size, work)
                mark = "  <- SDK default" if size == BATCH_SIZE else ""
                print(f"{size:>6} {raw:>9.0f} ent/s {sdk:>11.0f} ent/s {sdk / raw:>6.2f}x{mark}")
            print(f"adapters, own simulator -> broker, batch size {BATCH_SIZE}:")
            for name in ADAPTERS:
                print(await adapter_rate(url, name, records, work), flush=True)
        finally:
            broker.kill()
            broker.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--sizes", default="10,50,100,250,500,1000")
    args = parser.parse_args()
    asyncio.run(main(args.records, [int(s) for s in args.sizes.split(",")]))
