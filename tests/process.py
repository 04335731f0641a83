"""A real `cetate serve` subprocess, for the tests that drive the process itself (signals,
replicas, crashes): a free port, the spawn, and the wait until /health answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import httpx

STARTUP_TIMEOUT = 20.0  # seconds until /health must answer 200
POLL_INTERVAL = 0.05  # between two /health attempts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_serve(port: int, store: str, *extra: str,
                cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """`cetate serve` on 127.0.0.1:port; stderr is kept for the error of a failed start."""
    return subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--port", str(port), "--store", store, *extra],
        cwd=cwd, env={**os.environ, "CETATE_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_healthy(proc: subprocess.Popen[bytes], url: str, *, name: str = "broker",
                 timeout: float = STARTUP_TIMEOUT) -> None:
    """Return once url/health answers 200; RuntimeError with its stderr if the process exits,
    or "<name> did not start" after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"{name} did not start")


class ServedBroker:
    """`cetate serve` on one store (a SQLite file or a PostgreSQL database), (re)started on
    demand, each time on a fresh port: read `url` after `start`."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = spawn_serve(port, self.store)
        wait_healthy(self.proc, self.url)


class SqliteBroker(ServedBroker):
    """A ServedBroker on one SQLite file."""

    def __init__(self, db: Path) -> None:
        super().__init__(f"sqlite:///{db}")
        self.db = db


B = TypeVar("B", bound=ServedBroker)


def sqlite_broker(db: Path) -> Iterator[SqliteBroker]:
    """The body of a fixture: a SqliteBroker, killed at teardown if it still runs."""
    yield from served(SqliteBroker(db))


def served(broker: B) -> Iterator[B]:
    """The body of a fixture: the broker, killed at teardown if it still runs."""
    yield broker
    if broker.proc and broker.proc.poll() is None:
        broker.proc.kill()
        broker.proc.wait()
