"""Shared bench machinery: start servers as subprocesses, drive them with N concurrent clients.

Figures are requests/s and p50/p95 latency in ms, measured in the same run as a baseline (a bare
aiohttp server returning a fixed JSON body), so the ratios hold on any machine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{args} did not start")


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    def line(self, baseline: Result | None = None) -> str:
        ratio = f"{self.rps / baseline.rps:6.2f}x" if baseline else "   1.00x"
        return (f"{self.name:<28} {self.rps:9.0f} req/s  p50 {self.pct(0.5):6.2f} ms  "
                f"p95 {self.pct(0.95):6.2f} ms  errors {self.errors:4d}  vs baseline {ratio}")


Request = Callable[[aiohttp.ClientSession, int], Awaitable[int]]


async def drive(name: str, base: str, request: Request, *, clients: int, total: int) -> Result:
    """Run `total` requests from `clients` concurrent clients; request(i) returns the status."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base, connector=connector) as session:

        async def client() -> None:
            nonlocal errors
            for i in counter:
                t0 = time.perf_counter()
                status = await request(session, i)
                latencies.append((time.perf_counter() - t0) * 1000)
                if status >= 300:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return Result(name, total, elapsed, latencies, errors)


def summary(results: list[Result]) -> None:
    print(f"{'median of':<28} {statistics.median(r.rps for r in results):9.0f} req/s")
