"""The access policies' cost on entity retrieval and query throughput, policies on against off.

    .venv/bin/python -m bench.access [--clients 16] [--requests 2000] [--entities 200]

Two real `cetate serve` brokers run side by side, each on its own fresh SQLite store, both with
the same identity set up (a local JWKS file with an RSA key, tokens signed with PyJWT; the same
pseudonym key file): "on" enforces the shipped policies (contracts/policies), "off" runs with
CETATE_ACCESS_CONTROL=off. Both are seeded with the same Streetlights (a pseudonymous `owner`)
and TicketValidations (a personal `riderCategory`, which city IT may not see) and get the same
requests, carrying the same city-it bearer token: on "on" each answer is decided and masked.
Identity is configured on both so that the figure is the policies' cost alone; the broker
remembers verified tokens (security/identity/tokens.py, TOKEN_CACHE_S), so one token re-sent
costs a SHA-256 and a lookup per request, not a signature check, on both brokers.

Workloads: retrieval (GET /entities/{id}, Streetlights and TicketValidations in turn) and query
(GET /entities?type=...&limit=20, both types in turn, pages through the seed). Rounds alternate
which broker goes first so drift on a shared machine hits both; medians are compared. Prints
req/s, p50/p95 per broker, the on/off ratio and the cost % (target: at most 15 %, ratio
>= 0.85), and the CPU-seconds per request of each broker process (on a shared machine the
steadier figure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bench.common import Request, Result, drive, free_port, start

ROUNDS = 4  # alternating which broker goes first
TICKS = os.sysconf("SC_CLK_TCK")
ISSUER = "https://idp.bench.city/realms/city"
AUDIENCE = "cetate"
KID = "bench-1"
ENTITIES = "/ngsi-ld/v1/entities"
CETATE = "https://cetate.city/ns/context.jsonld"
LIGHTING = "https://smart-data-models.github.io/dataModel.Streetlighting/context.jsonld"
PAGE = 20


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def link(context: str) -> str:
    return f'<{context}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def lamp(i: int) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Streetlight:bench-{i}", "type": "Streetlight",
            "status": {"type": "Property", "value": "ok"},
            "owner": {"type": "Property", "value": f"urn:ngsi-ld:Person:owner-{i % 17}"},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [23.8 + i / 1e4, 44.3]}}}


def tap(i: int) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:TicketValidation:bench-{i}", "type": "TicketValidation",
            "validationResult": {"type": "Property", "value": "accepted"},
            "refTransitCard": {"type": "Relationship",
                               "object": f"urn:ngsi-ld:TransitCard:{i % 50}"},
            "riderCategory": {"type": "Property", "value": "student"}}


class Issuer:
    """The identity provider's side: one RSA key, published in a JWKS file, signing tokens."""

    def __init__(self, folder: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks = folder / "jwks.json"
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwks.write_text(json.dumps({"keys": [{**jwk, "kid": KID, "alg": "RS256",
                                                   "use": "sig"}]}))

    def bearer(self, sub: str, *roles: str) -> dict[str, str]:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 3600,
                  "roles": list(roles)}
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})
        return {"Authorization": f"Bearer {token}"}


async def seed(base: str, admin: dict[str, str], entities: int) -> None:
    async with aiohttp.ClientSession(base) as session:
        for make, context in ((lamp, LIGHTING), (tap, CETATE)):
            for i in range(entities):
                body = json.dumps({**make(i), "@context": context})
                async with session.post(ENTITIES, data=body, headers={
                        **admin, "Content-Type": "application/ld+json"}) as r:
                    if r.status != 201:
                        raise RuntimeError(f"seeding {base}: {r.status} {await r.text()}")


async def check_masking(bases: dict[str, str], token: dict[str, str]) -> None:
    """The premise: "on" leaves city IT's hidden attribute out, "off" does not."""
    async with aiohttp.ClientSession() as session:
        seen = {}
        for name, base in bases.items():
            async with session.get(f"{base}{ENTITIES}/{tap(0)['id']}",
                                   headers={**token, "Link": link(CETATE)}) as r:
                if r.status != 200:
                    raise RuntimeError(f"{name}: {r.status} {await r.text()}")
                seen[name] = "riderCategory" in await r.json()
    if seen != {"on": False, "off": True}:
        raise RuntimeError(f"riderCategory present per broker: {seen}; policies not as expected")


def workloads(token: dict[str, str], entities: int) -> dict[str, Request]:
    lighting = {**token, "Link": link(LIGHTING)}
    cetate = {**token, "Link": link(CETATE)}

    async def retrieve(s: aiohttp.ClientSession, i: int) -> int:
        n = (i // 2) % entities
        eid, headers = (lamp(n)["id"], lighting) if i % 2 == 0 else (tap(n)["id"], cetate)
        async with s.get(f"{ENTITIES}/{eid}", headers=headers) as r:
            await r.read()
            return r.status

    async def query(s: aiohttp.ClientSession, i: int) -> int:
        kind, headers = ("Streetlight", lighting) if i % 2 == 0 else ("TicketValidation", cetate)
        offset = ((i // 2) * PAGE) % max(entities - PAGE + 1, 1)
        params = {"type": kind, "limit": str(PAGE), "offset": str(offset)}
        async with s.get(ENTITIES, params=params, headers=headers) as r:
            await r.read()
            return r.status

    return {"retrieve": retrieve, "query": query}


async def run(clients: int, total: int, entities: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        issuer = Issuer(folder)
        key_file = folder / "pseudonym.key"
        key_file.write_bytes(secrets.token_bytes(32))
        identity = {"CETATE_OIDC_ISSUER": ISSUER, "CETATE_OIDC_AUDIENCE": AUDIENCE,
                    "CETATE_OIDC_JWKS": str(issuer.jwks),
                    "CETATE_PSEUDONYM_KEY_FILE": str(key_file),
                    "CETATE_LOG_LEVEL": "WARNING", "CETATE_VALIDATION": "off"}
        if os.environ.get("CETATE_POLICY_DIR"):
            raise SystemExit("unset CETATE_POLICY_DIR: the bench measures the shipped policies")
        procs, bases, pids = [], {}, {}
        try:
            for name, mode in (("on", "on"), ("off", "off")):
                port = free_port()
                (folder / name).mkdir()
                store = f"sqlite:///{folder / name / 'cetate.db'}"
                procs.append(start(["-m", "broker", "serve", "--port", str(port),
                                    "--store", store], port,
                                   {**identity, "CETATE_ACCESS_CONTROL": mode}))
                bases[name] = f"http://127.0.0.1:{port}"
                pids[name] = procs[-1].pid
            admin = issuer.bearer("admin-1", "admin")
            for base in bases.values():
                await seed(base, admin, entities)
            token = issuer.bearer("it-1", "city-it")
            await check_masking(bases, token)
            results: dict[tuple[str, str], list[Result]] = {}
            cpu: dict[tuple[str, str], float] = {}
            for kind, request in workloads(token, entities).items():
                for base in bases.values():  # warm-up: caches, token, SQLite pages
                    await drive(kind, base, request, clients=clients, total=min(total, 200))
                for rnd in range(ROUNDS):
                    order = list(bases.items()) if rnd % 2 == 0 else list(bases.items())[::-1]
                    for name, base in order:
                        c0 = cpu_seconds(pids[name])
                        res = await drive(f"{kind} {name}", base, request, clients=clients,
                                          total=total)
                        cpu[(kind, name)] = cpu.get((kind, name), 0) + cpu_seconds(
                            pids[name]) - c0
                        results.setdefault((kind, name), []).append(res)
        finally:
            for p in procs:
                p.terminate()
                p.wait()
    return report(results, cpu, ROUNDS * total)


def report(results: dict[tuple[str, str], list[Result]], cpu: dict[tuple[str, str], float],
           n: int) -> list[str]:
    lines = []
    for kind in ("retrieve", "query"):
        rps = {name: statistics.median(r.rps for r in results[(kind, name)])
               for name in ("on", "off")}
        for name in ("on", "off"):
            runs = results[(kind, name)]
            lines.append(f"{kind:<8} policies {name:<3} {rps[name]:7.0f} req/s  "
                         f"p50 {statistics.median(r.pct(0.5) for r in runs):6.2f} ms  "
                         f"p95 {statistics.median(r.pct(0.95) for r in runs):6.2f} ms  "
                         f"errors {sum(r.errors for r in runs)}")
        ratio = rps["on"] / rps["off"]
        cpu_on, cpu_off = cpu[(kind, "on")] / n * 1e6, cpu[(kind, "off")] / n * 1e6
        lines.append(f"{kind:<8} on/off {ratio:5.2f}  cost {100 * (1 - ratio):5.1f} % "
                     f"(target <= 15 %)  broker CPU per request: on {cpu_on:5.0f} µs  "
                     f"off {cpu_off:5.0f} µs  cost {100 * (cpu_on / cpu_off - 1):5.1f} %")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests per broker per round (4 rounds per workload)")
    parser.add_argument("--entities", type=int, default=200,
                        help="Streetlights and as many TicketValidations seeded in each broker")
    args = parser.parse_args()
    for line in asyncio.run(run(args.clients, args.requests, args.entities)):
        print(line)


if __name__ == "__main__":
    main()
