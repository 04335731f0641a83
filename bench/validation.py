"""The cost of validation on ingest: entity create through the API with validation strict
against the same broker with validation off, in one run, and raw validations per second.

    .venv/bin/python -m bench.validation [--clients 8] [--requests 2000] [--rounds 3]

Two broker processes (CETATE_VALIDATION=strict and =off) get the same workload in alternating
rounds, so machine noise hits both alike; the median round of each is compared. Then the pure
check (keyValues reduction + compiled schema) is timed in-process on every contract type, for
valid entities (the jsonschema-rs path) and invalid ones (jsonschema explains the failure).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import Result, drive, free_port, start
from broker.entities.parse import parse_entity
from broker.validation import check_entity, contracts
from models.domain import to_normalized
from tests.contracts.examples import VALID, broken

LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
NOW = "2026-11-23T10:00:00.000Z"


def lamp(i: int, round_: int) -> dict[str, Any]:
    body = to_normalized({**VALID["Streetlight"], "type": "Streetlight"},
                         contracts().named("Streetlight"))
    return {**body, "id": f"urn:ngsi-ld:Streetlight:bench-{round_}-{i}"}


async def api(clients: int, total: int, rounds: int) -> list[str]:
    headers = {"Link": LINK.format(contracts().named("Streetlight").context)}
    ports = {"strict": free_port(), "off": free_port()}
    with tempfile.TemporaryDirectory() as tmp:
        procs = {
            mode: start(["-m", "broker", "serve", "--port", str(port), "--store",
                         f"sqlite:///{Path(tmp) / mode}.db", "--log-level", "WARNING"],
                        port, env={"CETATE_VALIDATION": mode})
            for mode, port in ports.items()}
        try:
            runs: dict[str, list[Result]] = {"strict": [], "off": []}
            for round_ in range(rounds + 1):  # round 0 warms both up
                for mode, port in ports.items():
                    async def create(s: aiohttp.ClientSession, i: int, r: int = round_) -> int:
                        async with s.post("/ngsi-ld/v1/entities", json=lamp(i, r),
                                          headers=headers) as response:
                            await response.read()
                            return response.status
                    result = await drive(f"create, validation {mode}",
                                         f"http://127.0.0.1:{port}", create, clients=clients,
                                         total=total if round_ else 200)
                    if round_:
                        runs[mode].append(result)
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=30)
    median = {mode: sorted(rs, key=lambda r: r.rps)[len(rs) // 2] for mode, rs in runs.items()}
    lines = [f"entity create (Streetlight, SDM @context), {clients} clients, {total} requests "
             f"x {rounds} rounds, median round:"]
    lines.append(median["off"].line())
    lines.append(median["strict"].line(median["off"]))
    cost = 1 - median["strict"].rps / median["off"].rps
    per_round = {mode: [round(r.rps) for r in rs] for mode, rs in runs.items()}
    lines.append(f"  validation costs {cost:.1%} of create throughput (req/s per round, "
                 f"strict {per_round['strict']}, off {per_round['off']})")
    return lines


def raw(seconds: float) -> list[str]:
    known = contracts()
    cases: dict[str, dict[str, Any]] = {"valid": {}, "invalid": {}}
    for name in VALID:
        terms = known.named(name).terms
        for kind, kv in (("valid", VALID[name]), ("invalid", broken(name))):
            body = to_normalized({**kv, "type": name}, known.named(name))
            cases[kind][name] = parse_entity(body, terms, NOW)
    for entities in cases.values():  # first calls compile regexes and resolve $refs
        for entity in entities.values():
            check_entity(entity, known)
    lines = ["pure check_entity (reduce to keyValues + compiled schema), per type:"]
    for kind, entities in cases.items():
        rates: dict[str, float] = {}
        for name, entity in entities.items():
            n, start_ = 0, time.perf_counter()
            while time.perf_counter() - start_ < seconds:
                for _ in range(50):
                    check_entity(entity, known)
                n += 50
            rates[name] = n / (time.perf_counter() - start_)
        slowest = min(rates, key=rates.__getitem__)
        lines.append(f"  {kind:<8} median {statistics.median(rates.values()):9.0f} /s   "
                     f"slowest {slowest} {rates[slowest]:.0f} /s   "
                     f"fastest {max(rates.values()):.0f} /s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.2, help="per type, pure check")
    args = parser.parse_args()
    for line in raw(args.seconds):
        print(line)
    for line in asyncio.run(api(args.clients, args.requests, args.rounds)):
        print(line)


if __name__ == "__main__":
    main()
