"""Helpers for the adapter tests of every domain (import them: `from tests.adapters.support
import ...`); the fixtures are in tests/adapters/conftest.py.

- BrokerProcess: a real `cetate serve` on a port chosen up front (so an adapter can be started
  before the broker is up), loopback receivers allowed (subscriptions notify 127.0.0.1).
- run_cli / spawn_cli: `python -m broker adapter ...` as a subprocess, with the test key.
- entities(): everything of some types the broker holds, paged.
- state files: checkpoint(), dead_letters(), status().
- eventually(): wait for a condition the adapter makes true, failing with what was awaited.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from tests.process import free_port, spawn_serve, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
TEST_SECRET = "tests-only-pseudonym-key-0123456789abcdef"  # CETATE_ADAPTER_SECRET of the tests
PAGE = 1000  # the broker's largest page (broker/http/query.py MAX_LIMIT)
CLI_TIMEOUT = 60.0
WAIT = 30.0  # seconds an eventually-true condition may take on a loaded machine


class BrokerProcess:
    """`cetate serve` on one SQLite file and one port, started and stopped on demand."""

    def __init__(self, db: Path, port: int | None = None) -> None:
        self.db = db
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> BrokerProcess:
        self.proc = spawn_serve(self.port, f"sqlite:///{self.db}", "--allow-network",
                                "127.0.0.0/8")
        if wait:
            wait_healthy(self.proc, self.url)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "CETATE_ADAPTER_SECRET": TEST_SECRET, "PYTHONPATH": str(ROOT)}
    env.update(extra)
    return env


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "broker", "adapter", *args]


def run_cli(*args: str, timeout: float = CLI_TIMEOUT, **env: str
            ) -> subprocess.CompletedProcess[str]:
    """`cetate adapter ARGS`, to its end; its exit code, stdout and stderr."""
    return subprocess.run(cli_args(*args), cwd=ROOT, env=cli_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def spawn_cli(*args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cli_args(*args), cwd=ROOT, env=cli_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def entities(url: str, types: str, context: str, *, tenant: str = "") -> list[dict[str, Any]]:
    """Every entity of `types` (comma-separated, as `context` names them) the broker holds."""
    headers = {"Link": f'<{context}>; rel="http://www.w3.org/ns/json-ld#context"; '
                       f'type="application/ld+json"'}
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    out: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        while True:
            page = http.get("/ngsi-ld/v1/entities",
                            params={"type": types, "limit": PAGE, "offset": len(out)})
            if page.status_code == 404 and tenant and not out:
                return []  # a tenant nothing was ever written to does not exist
            page.raise_for_status()
            out.extend(page.json())
            if len(page.json()) < PAGE:
                return out


def checkpoint(state: Path) -> dict[str, Any]:
    path = state / "checkpoint.json"
    return json.loads(path.read_text())["positions"] if path.exists() else {}


def dead_letters(state: Path) -> list[dict[str, Any]]:
    path = state / "dead-letters.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def status(state: Path) -> dict[str, Any]:
    return json.loads((state / "status.json").read_text())


async def eventually(check: Callable[[], Awaitable[bool] | bool], what: str,
                     timeout: float = WAIT, task: asyncio.Task[Any] | None = None) -> None:
    """Wait until `check()` holds; fail after `timeout`, or as soon as `task` (an adapter
    running in this process) ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if task is not None and task.done():
            raise AssertionError(f"the adapter ended before {what}: {task.exception()!r}")
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")
