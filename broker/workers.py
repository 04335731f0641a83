"""`cetate serve --workers N`: a supervisor forking N broker processes on one listening socket.

The supervisor binds the socket, then forks; every worker accepts on the same socket (the
kernel hands each connection to one of them) and opens its own store connection(s). Workers
share nothing else, like replicas on other hosts: caches are per process and safe to lose.
SIGTERM or SIGINT to the supervisor is passed on to every worker, which finishes its in-flight
requests (aiohttp's graceful shutdown) before exiting. A worker that dies is replaced, unless
workers keep dying right after they start (a broken configuration): then everything stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("cetate.workers")

BACKLOG = 1024  # pending connections per socket, shared by the workers (nginx's default 511)
EARLY_DEATH_S = 5.0  # a worker dying sooner than this after its start counts as a crash loop
MAX_EARLY_DEATHS = 5  # crash-loop deaths in a row before the supervisor gives up

Worker = Callable[[socket.socket], None]
"""Runs one worker process's server on the shared socket until it is told to stop."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket that forked workers inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def _spawn(worker: Worker, sock: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    # The worker: default signal handling (aiohttp installs its own), then serve.
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        worker(sock)
    except BaseException:
        log.exception("worker %s failed", os.getpid())
        code = 1
    finally:
        os._exit(code)


def supervise(worker: Worker, sock: socket.socket, count: int) -> int:
    """Run `count` workers on `sock` until SIGTERM/SIGINT; the exit status (0: clean stop)."""
    if count < 1:
        raise ValueError("workers must be at least 1")
    stopping = False

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in started:
            _signal(pid, signal.SIGTERM)

    started: dict[int, float] = {}  # pid -> monotonic start time
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(count):
            started[_spawn(worker, sock)] = time.monotonic()
        log.info("supervisor %s running %d workers", os.getpid(), count)
        early_deaths, status = 0, 0
        while started:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            born = started.pop(pid, None)
            if born is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            if stopping:
                status = status or (0 if code in (0, -signal.SIGTERM) else 1)
                continue
            early_deaths = early_deaths + 1 if time.monotonic() - born < EARLY_DEATH_S else 0
            log.warning("worker %s exited with %s", pid, code)
            if early_deaths >= MAX_EARLY_DEATHS:
                log.error("workers keep dying on start; stopping")
                stop(signal.SIGTERM, None)
                status = 1
                continue
            started[_spawn(worker, sock)] = time.monotonic()
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.kill(pid, sig)
