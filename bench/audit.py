"""The audit log's cost on broker throughput, and the offline verifier's speed, in one run.

    .venv/bin/python -m bench.audit [--clients 16] [--requests 2000] [--verify-entries 200000]
                                    [--store-engine sqlite|postgresql] [--wrk-seconds 3]
                                    [--wrk-rounds 15]

Two brokers run side by side, one with the audit log on (its tables in the store's database, its
entries in the store writer's commits), one with CETATE_AUDIT=off, each on its own fresh SQLite
store; they are driven in turn (writes, then reads; four rounds, the first
broker alternating) so drift on a shared machine hits both; medians are compared. Prints
requests/s with the log on and off and the on/off ratio (target: at most 10 % cost, ratio
>= 0.90), then entries/s of `verify_export` over an export of --verify-entries random entries
(target: above 100,000/s). On a shared machine read the CPU figures: CPU-seconds per request of
each broker process, and entries per CPU-second of the verifier. With wrk installed, the same
on/off comparison again driven by wrk (a load generator in C, which takes less of the machine
from the brokers than the Python driver; --wrk-seconds 0 skips it), beside a second broker with
the log off whose ratio to the first is the noise floor of the on/off figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from bench.common import Request, Result, drive, free_port, start
from security.audit import export
from security.audit.entry import AuditRecord, Principal, Pseudonyms, seal
from security.audit.export import build_export, verify_export
from security.audit.keys import KeyRing
from security.audit.note import Checkpoint, sign_checkpoint
from security.audit.sqlite_log import SQLiteAuditStorage

ROUNDS = 4  # alternating which broker goes first
# After a broker's run, before its CPU is read and the next runs: its last reads' entries land
# by the next tree head (at most a second), and that work is its own, not the next broker's.
SETTLE_S = 1.5
TICKS = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: Path) -> float:
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_seconds(pid: int) -> tuple[float, float, float]:
    """User + system CPU time of a process with its children, of its main thread (the event
    loop) and of its children (the audit's sealing process), from Linux /proc: work per
    request compares independently of how busy the shared machine is, and the shares tell
    what the request path costs from what the store's threads and the sealing process do."""
    children = sum(map(_stat_cpu, _children(pid)))
    return (_stat_cpu(Path(f"/proc/{pid}/stat")) + children,
            _stat_cpu(Path(f"/proc/{pid}/task/{pid}/stat")), children)


def _children(pid: int) -> list[Path]:
    """The stat files of a process's live children (the audit sealing process): their CPU is
    the broker's too."""
    out: list[Path] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [Path(f"/proc/{c}/stat") for c in (task / "children").read_text().split()]
    return [p for p in out if p.exists()]


def lamp(i: int) -> dict[str, object]:
    return {"id": f"urn:ngsi-ld:Streetlight:bench-{i}", "type": "Streetlight",
            "powerState": {"type": "Property", "value": "on"},
            "dimmingLevel": {"type": "Property", "value": 0.8}}


PG_ADMIN = os.environ.get("CETATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ENGINE = "sqlite"  # or "postgresql" (--store-engine): the brokers' store


def _pg(statement: str) -> None:
    """One statement on the PostgreSQL server (psql: _brokers runs inside an event loop)."""
    subprocess.run(["psql", PG_ADMIN, "-qc", statement], check=True, capture_output=True)


OFF = {"CETATE_AUDIT": "off"}
ON_OFF: tuple[tuple[str, dict[str, str]], ...] = (("on", {}), ("off", OFF))


@contextlib.contextmanager
def _brokers(kinds: tuple[tuple[str, dict[str, str]], ...] = ON_OFF
             ) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Brokers of `kinds` (name, environment; by default one with the audit log on and one
    with it off), each on a fresh store of ENGINE (a SQLite file, or a PostgreSQL database of
    its own on CETATE_TEST_PG's server, dropped after); by base URL, in the order of kinds."""
    with tempfile.TemporaryDirectory() as tmp:
        procs: dict[str, subprocess.Popen[bytes]] = {}
        databases: list[str] = []
        try:
            for name, env in kinds:
                port = free_port()
                (Path(tmp) / name).mkdir()
                store = f"sqlite:///{Path(tmp) / name / 'cetate.db'}"
                if ENGINE == "postgresql":
                    database = f"cetate_bench_audit_{name}_{os.getpid()}"
                    _pg(f'CREATE DATABASE "{database}"')
                    databases.append(database)
                    store = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
                    env = {**env, "CETATE_AUDIT_KEY_DIR": str(Path(tmp) / name / "keys")}
                procs[f"http://127.0.0.1:{port}"] = start(
                    ["-m", "broker", "serve", "--port", str(port), "--store", store], port,
                    {"CETATE_LOG_LEVEL": "WARNING", **env})
            yield procs
        finally:
            for p in procs.values():
                p.terminate()
                p.wait()
            for database in databases:
                _pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def _throughput(clients: int, total: int) -> list[str]:
    with _brokers() as procs:
        bases = dict(zip(("on", "off"), procs, strict=True))
        pids = {name: procs[base].pid for name, base in bases.items()}
        results: dict[tuple[str, str], list[Result]] = {}
        # (process with children, event loop, children)
        cpu: dict[tuple[str, str], tuple[float, ...]] = {}

        async def phase(kind: str, name: str, base: str, fn: Request) -> None:
            """One broker driven once, with the CPU it spent meanwhile."""
            c0 = cpu_seconds(pids[name])
            res = await drive(f"{kind} audit {name}", base, fn, clients=clients, total=total)
            await asyncio.sleep(SETTLE_S)
            c1 = cpu_seconds(pids[name])
            was = cpu.get((kind, name), (0.0, 0.0, 0.0))
            cpu[(kind, name)] = tuple(w + b - a for w, a, b in zip(was, c0, c1, strict=True))
            results.setdefault((kind, name), []).append(res)

        for rnd in range(ROUNDS):
            offset = rnd * total
            order = list(bases.items()) if rnd % 2 == 0 else list(bases.items())[::-1]

            async def write(s: aiohttp.ClientSession, i: int, o: int = offset) -> int:
                async with s.post("/ngsi-ld/v1/entities", json=lamp(o + i)) as r:
                    return r.status

            async def read(s: aiohttp.ClientSession, i: int, o: int = offset) -> int:
                eid = lamp(o + i % total)["id"]
                async with s.get(f"/ngsi-ld/v1/entities/{eid}") as r:
                    await r.read()
                    return r.status

            for name, base in order:
                await phase("write", name, base, write)
            for name, base in order:
                await phase("read", name, base, read)
    lines = []
    for kind in ("write", "read"):
        on = statistics.median(r.rps for r in results[(kind, "on")])
        off = statistics.median(r.rps for r in results[(kind, "off")])
        errors = sum(r.errors for name in ("on", "off") for r in results[(kind, name)])
        p50_on = statistics.median(r.pct(0.5) for r in results[(kind, "on")])
        p50_off = statistics.median(r.pct(0.5) for r in results[(kind, "off")])
        lines.append(f"{kind:<5} audit on {on:7.0f} req/s (p50 {p50_on:5.2f} ms)  off {off:7.0f} "
                     f"req/s (p50 {p50_off:5.2f} ms)  on/off {on / off:5.2f}  "
                     f"cost {100 * (1 - on / off):5.1f} %  errors {errors}")
        n = ROUNDS * total
        cpu_on, cpu_off = cpu[(kind, "on")][0] / n * 1e6, cpu[(kind, "off")][0] / n * 1e6
        loop_on, loop_off = cpu[(kind, "on")][1] / n * 1e6, cpu[(kind, "off")][1] / n * 1e6
        sealing = cpu[(kind, "on")][2] / n * 1e6
        lines.append(f"{kind:<5} broker CPU per request: on {cpu_on:6.0f} µs  off {cpu_off:6.0f} "
                     f"µs  cost {100 * (cpu_on / cpu_off - 1):5.1f} %; of it the event loop's: "
                     f"on {loop_on:4.0f} µs  off {loop_off:4.0f} µs, the sealing process's: "
                     f"{sealing:4.0f} µs")
    return lines


_WRK_WRITE = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"id":"urn:ngsi-ld:Streetlight:wrk-%s-' .. counter .. '","type":"Streetlight",'
    .. '"powerState":{"type":"Property","value":"on"},'
    .. '"dimmingLevel":{"type":"Property","value":0.8}}'
  return wrk.format("POST", "/ngsi-ld/v1/entities", {["Content-Type"]="application/json"}, body)
end
"""
_WRK_READ = """
request = function()
  return wrk.format("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:bench-"
    .. math.random(0, %d))
end
"""


def _wrk(base: str, script: str, clients: int, seconds: int) -> tuple[float, int]:
    """Requests/s and non-2xx answers of one wrk run (a load generator in C: it leaves the
    broker more of a shared machine than the Python driver does)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "-s", f.name, base],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return float(rate.group(1)), int(bad.group(1)) if bad else 0


WRK_KINDS: tuple[tuple[str, dict[str, str]], ...] = (
    ("on", {}), ("off", OFF), ("off again", OFF))  # the last: the noise floor


async def _wrk_throughput(clients: int, seconds: int, loaded: int, rounds: int) -> list[str]:
    """The same comparison driven by wrk, when it is installed, with a second "off" broker as
    a control: how far two identical brokers differ is the noise the on/off figure carries.
    Each round drives every broker once, in an order rotated each round; the cost is the
    median over rounds of on/off within the round (drift between rounds cancels)."""
    if shutil.which("wrk") is None:
        return ["wrk is not installed (apt-get install wrk): no wrk-driven figures"]
    with _brokers(WRK_KINDS) as procs:
        bases = dict(zip((name for name, _ in WRK_KINDS), procs, strict=True))
        pids = {name: procs[base].pid for name, base in bases.items()}
        for base in bases.values():  # the entities the reads ask for
            async def load(s: aiohttp.ClientSession, i: int) -> int:
                async with s.post("/ngsi-ld/v1/entities", json=lamp(i)) as r:
                    return r.status
            await drive("load", base, load, clients=clients, total=loaded)
        rps: dict[tuple[str, str], list[float]] = {}
        loop: dict[tuple[str, str], list[float]] = {}  # event loop CPU µs per request
        work: dict[tuple[str, str], list[float]] = {}  # the whole broker's, sealing included
        errors = 0
        names = list(bases)
        for rnd in range(rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for kind, script in (("write", _WRK_WRITE % rnd), ("read", _WRK_READ % (
                    loaded - 1))):
                for name in order:
                    c0 = cpu_seconds(pids[name])
                    r, bad = await asyncio.to_thread(_wrk, bases[name], script, clients,
                                                     seconds)
                    await asyncio.sleep(SETTLE_S)
                    c1 = cpu_seconds(pids[name])
                    rps.setdefault((kind, name), []).append(r)
                    loop.setdefault((kind, name), []).append((c1[1] - c0[1]) / (r * seconds)
                                                             * 1e6)
                    work.setdefault((kind, name), []).append((c1[0] - c0[0]) / (r * seconds)
                                                             * 1e6)
                    errors += bad
    lines = []
    for kind in ("write", "read"):
        on, off, again = (rps[(kind, name)] for name in names)
        ratio = statistics.median(a / b for a, b in zip(on, off, strict=True))
        floor = statistics.median(a / b for a, b in zip(again, off, strict=True))
        spread = max(abs(1 - a / b) for a, b in zip(again, off, strict=True))
        loops = [statistics.median(loop[(kind, name)]) for name in names]
        lines.append(f"wrk {kind:<5} audit on {statistics.median(on):7.0f} req/s  off "
                     f"{statistics.median(off):7.0f} req/s  on/off {ratio:5.3f}  cost "
                     f"{100 * (1 - ratio):5.1f} %  (median of {rounds} rounds)")
        lines.append(f"wrk {kind:<5} noise floor: a second off broker/off {floor:5.3f} "
                     f"(cost {100 * (1 - floor):4.1f} %, rounds within ±{100 * spread:.1f} %); "
                     f"event loop CPU per request on {loops[0]:4.0f} µs, off {loops[1]:4.0f} "
                     f"µs, off again {loops[2]:4.0f} µs")
        works = [statistics.median(work[(kind, name)]) for name in names]
        lines.append(f"wrk {kind:<5} broker CPU per request (every thread and the sealing "
                     f"process): on {works[0]:4.0f} µs, off {works[1]:4.0f} µs, off again "
                     f"{works[2]:4.0f} µs: cost {100 * (works[0] / works[1] - 1):4.1f} %, noise "
                     f"floor {100 * (works[2] / works[1] - 1):4.1f} %")
    lines.append(f"wrk non-2xx answers: {errors}")
    return lines


def _verification(entries: int) -> list[str]:
    rng = random.Random(1)
    pseudonyms = Pseudonyms(b"b" * 32)
    with tempfile.TemporaryDirectory() as tmp:
        storage = SQLiteAuditStorage(Path(tmp) / "audit.db", synchronous="OFF")
        storage.open()
        signer = KeyRing(Path(tmp) / "keys", "cetate.bench/audit").signer()
        batch = []
        for n in range(entries):
            record = AuditRecord(action="entity.retrieve", tenant="parking",
                                 principal=Principal(f"user-{n % 97}"))
            record.note(entity_ids=[f"urn:ngsi-ld:ParkingSpot:{rng.randrange(5000)}"],
                        types=["ParkingSpot"])
            record.personal["client"] = f"10.0.{n % 256}.{rng.randrange(256)}"
            batch.append(seal(record, time=f"2026-12-01T10:00:{n % 60:02d}.000000Z",
                              request_id=f"r{n}", status=200, pseudonyms=pseudonyms))
            if len(batch) == 5000:
                storage.append(batch)
                batch = []
        if batch:
            storage.append(batch)
        head = storage.head()
        note = sign_checkpoint(Checkpoint("cetate.bench/audit", head.size, head.root()), signer)
        t0 = time.perf_counter()
        raw = build_export(storage, note, 0, None)
        built = time.perf_counter() - t0
        storage.close()
    t0, c0 = time.perf_counter(), _cpu_with_children()
    report = verify_export(raw, [signer.verifier])
    took, cpu = time.perf_counter() - t0, _cpu_with_children() - c0
    assert report.ok, report.text()
    # CPU time too (the verifier's forked leaf checkers' included): on a shared machine the
    # wall clock also counts other processes' turns.
    return [f"export of {entries} entries: {len(raw) / 1e6:.1f} MB, built in {built:.2f} s",
            f"verify  {entries / took:9.0f} entries/s wall ({took:.2f} s, "
            f"{'leaves checked in parallel' if entries >= export.PARALLEL_MIN else 'serial'}), "
            f"{entries / cpu:9.0f} entries/s of CPU time (target > 100000/s)"]


def _cpu_with_children() -> float:
    """User + system CPU of this process and of its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--verify-entries", type=int, default=200_000)
    parser.add_argument("--store-engine", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the brokers' store (postgresql: on CETATE_TEST_PG's server)")
    parser.add_argument("--wrk-seconds", type=int, default=3,
                        help="each wrk run's length; 0: no wrk-driven comparison")
    parser.add_argument("--wrk-rounds", type=int, default=15,
                        help="rounds of the wrk comparison (each drives every broker once)")
    args = parser.parse_args()
    global ENGINE
    ENGINE = args.store_engine
    for line in asyncio.run(_throughput(args.clients, args.requests)):
        print(line)
    if args.wrk_seconds > 0:
        for line in asyncio.run(_wrk_throughput(args.clients, args.wrk_seconds,
                                                args.requests, args.wrk_rounds)):
            print(line)
    for line in _verification(args.verify_entries):
        print(line)


if __name__ == "__main__":
    main()
