"""The sealing process: requests' audit records sealed and bundled off the broker's process.

Sealing an entry (its JSON body, commitments, pseudonym, leaf hash) and building its bundle's
columns is pure Python, and the broker's event loop is its bottleneck: done there it cost the
loop more than the rest of the audit together. So the loop hands the records of reads (and of
writes whose facts are already durable) in batches to a child process, each record encoded
as a JSON array when it is made (`wire`), and gets back built bundles
(security/audit/bundles.py `Built`), which the store only numbers and inserts. Nothing waits
on it but a flush: a read's entry is owed by the next tree head, which flushes first.

The child is `python -m security.audit.sealer`: frames on stdin and stdout (a 4-byte length,
then the body); the first frame is the pseudonym key, each next one a batch as a JSON array
(`frame_of`), each answer a pickled `Built`. Batches are answered in order. If the
child cannot start or dies, the batches it held and those after it are sealed on the loop
(`seal_batch`) until a new child starts (RESTART_AFTER_S later): slower, never lost.
The child runs at a lower priority than the broker (SEALER_NICE).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Callable, Sequence
from hashlib import sha256
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from security.audit.bundles import Built, key_of
from security.audit.entry import (
    SALT_BYTES,
    AuditRecord,
    Pseudonyms,
    detail_items,
    dumps_plain,
    entry_bytes,
    entry_time,
    take_salts,
)
from security.audit.merkle import LEAF_PREFIX

log = logging.getLogger("cetate.audit")

RESTART_AFTER_S = 5.0  # between a child's death and the next start
STOP_WAIT_S = 5.0
HUNG_S = 10.0  # a batch not back by then: the child is killed, its batches sealed here
MAX_INFLIGHT = 64  # batches handed over and not back; beyond, sealed here (backpressure)
# The child yields the CPU to the broker's loop and its store writer: a read's entry is owed
# only by the next tree head, a response now. In an A/B on 2 vCPUs under wrk reads (8 rounds),
# the audit's on/off throughput ratio was 0.83 with the child at the broker's priority and 0.90
# at +10. A child starved for long is caught by MAX_INFLIGHT: the loop seals, nothing is lost.
SEALER_NICE = 10
# A batch's answer is about 230 kB (256 entries with their columns). In a default 64 kB pipe it
# takes the loop four reads, and as many turns and buffer copies; pipes this large take it in
# one (Linux caps an unprivileged pipe at /proc/sys/fs/pipe-max-size, 1 MiB by default).
PIPE_BYTES = 1 << 20
_FRAME = struct.Struct(">I")
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding `security`

# A record as it travels: the JSON array (time: an entry time or a Unix time, request id,
# status, pending, action, tenant, subject, roles, purpose, decision, rule, entity ids, entity
# types, masked, personal). Bytes, not a tuple: a record waits up to SEAL_BATCH requests for
# its batch, and encoded it is no work for the garbage collector and ready for the pipe (a
# batch's frame is a join, not a pickling on the loop).
Wire = bytes


def wire(record: AuditRecord, time: float | str, request_id: str, status: int | None,
         pending: int | None = None) -> Wire:
    p = record.principal
    return dumps_plain((time, request_id, status, pending, record.action, record.tenant,
                        p.subject, p.roles, record.purpose, record.decision, record.rule,
                        record.entity_ids, record.entity_types, record.masked,
                        record.personal))


def frame_of(wires: Sequence[Wire]) -> bytes:
    """A batch as one JSON array, as the child reads it."""
    return b"[" + b",".join(wires) + b"]"


def seal_wires(wires: Sequence[Wire], pseudonyms: Pseudonyms) -> Built:
    """The bundle of a non-empty batch of records, sealed in order."""
    return seal_frame(frame_of(wires), pseudonyms)


def seal_batch(wires: Sequence[Wire], pseudonyms: Pseudonyms,
               deliver: Callable[[Built], None]) -> None:
    """`seal_wires` to `deliver`, where a record that cannot be sealed is logged (by its request
    id: a log holds no personal detail) and left out, rather than failing its batch and holding
    those after it; nothing is delivered if no record could be sealed. (A bug: records are
    encoded as they are recorded, so only a record of the wrong shape fails here.)"""
    try:
        built = seal_wires(wires, pseudonyms)
    except Exception:
        log.exception("an audit batch could not be sealed; sealing its records one by one")
        good = []
        for one in wires:
            try:
                seal_wires([one], pseudonyms)
            except Exception:
                log.error("the audit entry of request %s is lost: its record cannot be sealed",
                          _request_of(one))
            else:
                good.append(one)
        if not good:
            return
        built = seal_wires(good, pseudonyms)
    deliver(built)


def _request_of(one: Wire) -> str:
    with contextlib.suppress(Exception):
        return str(orjson.loads(one)[1])
    return "(unreadable)"


def seal_frame(frame: bytes, pseudonyms: Pseudonyms) -> Built:
    """`seal_wires` of a batch's frame: the bytes of `build([seal(record, ...) for each
    record])` (security/audit/bundles.py, entry.py), in one pass with no object per entry but
    its columns' (it runs for every read)."""
    wires = orjson.loads(frame)
    salts = take_salts(2 * len(wires))  # the usual record commits to two details
    at = 0
    entries: list[bytes] = []
    facets: list[tuple[Any, ...]] = []
    kept: list[list[list[str]]] = []
    subjects: set[str] = set()
    ids_seen: set[str] = set()
    pending_rows: list[int] = []
    for (when, request_id, status, pending, action, tenant, subject, roles, purpose, decision,
         rule, ids, types, masked, personal) in wires:
        stamp = entry_time(when)
        pseudonym = pseudonyms(subject)
        commitments: dict[str, str] = {}
        details: list[list[str]] = []
        for name, value in detail_items(subject, personal):
            if at + SALT_BYTES > len(salts):
                salts, at = take_salts(len(wires)), 0
            salt = salts[at:at + SALT_BYTES]
            at += SALT_BYTES
            commitments[name] = sha256(salt + value.encode()).hexdigest()
            details.append([name, salt.hex(), value])
        entries.append(entry_bytes(stamp, request_id, status, action, tenant, pseudonym, roles,
                                   purpose, decision, rule, ids, types, masked, commitments))
        facets.append((stamp, pseudonym, tenant, action, purpose, decision, status, ids))
        kept.append(details)
        subjects.add(pseudonym)
        ids_seen.update(ids)
        if pending is not None:
            pending_rows.append(pending)
    times = [f[0] for f in facets]
    keys = {key_of("s", s) for s in subjects}
    keys.update(key_of("e", e) for e in ids_seen)
    return Built(len(entries), min(times), max(times), b"".join(sorted(keys)),
                 b"".join([sha256(LEAF_PREFIX + e).digest() for e in entries]),
                 orjson.dumps([len(e) for e in entries]), orjson.dumps(facets),
                 orjson.dumps(kept), b"".join(entries), tuple(pending_rows))


# -- the child ----------------------------------------------------------------------------------


def _read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


def main() -> None:
    """Seal batches from stdin until it closes (the broker's end: a Ctrl-C meant for the
    broker's process group is the broker's to handle)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(SEALER_NICE)  # raising one's own niceness needs no privilege
    for fd in (0, 1):  # a pipe's size is the pipe's: set from this end, it serves both
        with contextlib.suppress(OSError):  # above the system's cap: the default size
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    key = _read_frame(stdin)
    if key is None:
        return
    pseudonyms = Pseudonyms(key)
    while (frame := _read_frame(stdin)) is not None:
        out = pickle.dumps(seal_frame(frame, pseudonyms), pickle.HIGHEST_PROTOCOL)
        stdout.write(_FRAME.pack(len(out)) + out)
        stdout.flush()


# -- the broker's side --------------------------------------------------------------------------


class Sealer:
    """The broker's handle on its sealing child. `seal(wires)` returns at once; the bundle
    reaches `deliver` (on the loop) when built, in the order of the calls (batches after one
    still with the child wait for it, even when sealed here)."""

    def __init__(self, key: bytes, deliver: Callable[[Built], None]) -> None:
        self._key = key
        self._deliver = deliver
        self._pseudonyms = Pseudonyms(key)  # for sealing here when there is no child
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        # batches not delivered yet: (records, done, handed to the child)
        self._inflight: collections.deque[tuple[Sequence[Wire], asyncio.Future[None], bool]] = \
            collections.deque()
        self._reaping: list[asyncio.Future[None]] = []  # children gone, being waited for
        self._retry_at = 0.0
        self._closed = False
        self.batches_sealed = 0  # by a child (tests, the benchmark)

    def seal(self, wires: Sequence[Wire], start: bool = True) -> None:
        """Hand a batch over (`start`: and start a child if there is none: a full batch says
        the broker is busy; a flush's short one, in a quiet broker, does not)."""
        proc = self._proc
        if (proc is None or proc.stdin is None or proc.stdin.is_closing()
                or len(self._inflight) >= MAX_INFLIGHT):
            if start:
                self._start_soon()
            if not self._inflight:
                seal_batch(wires, self._pseudonyms, self._deliver)
                return
            # sealed here, but after the batches in flight: delivered in order
            self._inflight.append((wires, asyncio.get_running_loop().create_future(), False))
            return
        data = frame_of(wires)
        self._inflight.append((wires, asyncio.get_running_loop().create_future(), True))
        proc.stdin.write(_FRAME.pack(len(data)) + data)

    def _seal_here(self) -> None:
        """Deliver the batches at the head of the queue that are not the child's."""
        while self._inflight and not self._inflight[0][2]:
            wires, done, _ = self._inflight.popleft()
            try:
                seal_batch(wires, self._pseudonyms, self._deliver)
            finally:
                done.set_result(None)

    async def drain(self) -> None:
        """Wait until every batch handed over so far is delivered."""
        if not self._inflight:
            return
        _, waiting = await asyncio.wait([f for _, f, _ in self._inflight], timeout=HUNG_S)
        if waiting and self._proc is not None:
            log.error("the audit sealing process did not answer in %.0f s; killing it", HUNG_S)
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()  # its reader then seals what it held here
            await asyncio.wait(waiting)

    def _start_soon(self) -> None:
        if self._closed or self._starting is not None or time.monotonic() < self._retry_at:
            return
        self._starting = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        try:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "security.audit.sealer", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, env=env, limit=PIPE_BYTES)
            assert proc.stdin is not None
            proc.stdin.write(_FRAME.pack(len(self._key)) + self._key)
            if self._closed:
                proc.stdin.close()
                return
            self._proc = proc
            self._reader = asyncio.ensure_future(self._read(proc))
        except Exception:
            log.exception("the audit sealing process could not start; sealing in the broker")
            self._retry_at = time.monotonic() + RESTART_AFTER_S
        finally:
            self._starting = None

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                (size,) = _FRAME.unpack(await proc.stdout.readexactly(_FRAME.size))
                built = pickle.loads(await proc.stdout.readexactly(size))
                _, done, _ = self._inflight.popleft()
                self.batches_sealed += 1
                try:
                    self._deliver(built)
                finally:
                    done.set_result(None)
                self._seal_here()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if not self._closed:
                log.error("the audit sealing process stopped (%s); sealing in the broker", exc)
        except Exception:
            log.exception("the audit sealing process failed; sealing in the broker")
        finally:
            self._lost(proc)

    def _lost(self, proc: asyncio.subprocess.Process) -> None:
        """The child is gone: what it held is sealed here, in order."""
        if self._proc is proc:
            self._proc = None
            self._retry_at = time.monotonic() + RESTART_AFTER_S
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        self._reaping.append(asyncio.ensure_future(_reap(proc)))  # no zombie, no open transport
        self._inflight = collections.deque((w, d, False) for w, d, _ in self._inflight)
        self._seal_here()

    async def close(self) -> None:
        """Deliver what is in flight, then stop the child."""
        self._closed = True
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        await self.drain()
        if self._reaping:
            await asyncio.gather(*self._reaping)
        proc = self._proc
        self._proc = None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_WAIT_S)
        except TimeoutError:
            proc.kill()
        await _reap(proc)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Wait for a child, then close its transport: asyncio never closes a subprocess transport
    itself, and one left to the garbage collector closes its pipes through whatever loop is
    left (an error once that loop is closed)."""
    await proc.wait()
    transport = getattr(proc, "_transport", None)  # asyncio's Process has no public close
    if transport is not None:
        transport.close()


if __name__ == "__main__":
    main()
