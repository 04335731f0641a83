"""The audit log: an asynchronous appender with group commit, and the signer of its tree heads.

Entries are queued with a committer. In the broker the log's tables are in the store's own
database and the store commits them: SQLite appends the queued entries in its writer's group
transaction (beside the entity writes of that group: one commit, one fsync), PostgreSQL in one
batch transaction sequenced by an advisory lock (broker/store/sqlite_audit.py,
postgres_audit.py). A log kept apart (tools, tests, CETATE_AUDIT_STORE) commits batches in its
own transactions (ThreadedCommitter). `append` waits for the commit (a write whose change did
not commit with its audit facts: durable before its response); `record` and `submit` do not
(reads, and writes whose facts committed with them, security/audit/pending.py: they ride
along with the next commit, a full batch or the next tree head — signing a head first flushes
the queue — so they are in the log no later than the next tree head). `record`ed records are
sealed and bundled off the event loop, SEAL_BATCH at a time, by the sealing process
(security/audit/sealer.py); a write's record that `append` waits for is sealed by the
committer just before its commit. A tree head is signed at least every CHECKPOINT_INTERVAL
while entries arrive, and on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from security.audit.bundles import Built, build
from security.audit.entry import AuditRecord, Deferred, Detail, Pseudonyms, Sealed
from security.audit.keys import KeyRing, read_or_create_secret
from security.audit.merkle import Frontier, consistency_proof, inclusion_proof
from security.audit.note import Checkpoint, NoteSigner, VerifierKey, sign_checkpoint, split_note
from security.audit.query import EntryQuery
from security.audit.sealer import Sealer, Wire, seal_batch, wire

__all__ = ["EntryQuery"]  # importable from here, as before

log = logging.getLogger("cetate.audit")
T = TypeVar("T")

CHECKPOINT_INTERVAL = 1.0  # seconds; the issue asks for a head at least every second
GROUP_COMMIT_MAX = 512  # entries per transaction; bounds one group's latency
DEFAULT_ORIGIN = "cetate.local/audit"
MAX_QUERY_LIMIT = 1000
SEAL_BATCH = 256  # records sealed together, in the sealing process (fewer, larger hand-overs)


class Announced:
    """A write request's record, announced to the store: a store that commits one of its jobs
    can keep the record's facts durable in that job's transaction (`row`: the row it wrote,
    broker/store/sqlite_audit.py), so the response need not wait for the entry itself."""

    __slots__ = ("record", "request_id", "row")

    def __init__(self, record: AuditRecord, request_id: str) -> None:
        self.record = record
        self.request_id = request_id
        self.row: int | None = None  # set by the store's writer, before its COMMIT


# The running write request's announced record (set by the audit middleware).
PENDING_ENTRY: ContextVar[Announced | None] = ContextVar("cetate_audit_pending_entry",
                                                         default=None)


class AuditStorage(Protocol):
    """What an audit storage engine provides (security/audit/sqlite_log.py, broker/store/
    postgres_audit.py). All synchronous; the log calls reads from one thread of its own, and
    writes (when no store commits them) from another."""

    def open(self) -> None:
        """Create the schema if needed."""

    def close(self) -> None:
        """Close every connection."""

    def append(self, batch: Sequence[Sealed]) -> tuple[int, Frontier]:
        """Number and commit the batch under the database's write lock; (first index, head)."""

    def append_built(self, bundles: Sequence[Built]) -> tuple[int, Frontier]:
        """`append` of bundles already built (security/audit/bundles.py build)."""

    def add_checkpoint(self, size: int, note: str) -> None:
        """Keep a signed checkpoint (replacing that size's, which it extends by a signature)."""

    def erase_subject(self, subject: str) -> int:
        """Delete the kept details of a pseudonymous subject's entries; how many entries."""

    def head(self) -> Frontier:
        """The committed tree's frontier (its size and compact range)."""

    def perfect(self, level: int, index: int) -> bytes:
        """Hash of a perfect subtree; LookupError if the tree does not hold it yet."""

    def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """(index, exact leaf bytes) for start <= index < end, in order."""

    def latest_checkpoint(self) -> tuple[int, str] | None:
        """(size, signed note) of the largest checkpoint."""

    def checkpoint_at(self, size: int) -> str | None:
        """The signed checkpoint of that size, if one was issued."""

    def details(self, idx: int) -> list[Detail]:
        """The kept (not yet erased) details of an entry."""

    def query(self, q: EntryQuery) -> list[tuple[int, bytes]]:
        """Entries matching every filter, by index."""


@dataclass(frozen=True)
class AuditConfig:
    store: str  # "": in the broker store's own database; else sqlite:///path.db or a path
    key_dir: Path
    origin: str = DEFAULT_ORIGIN
    pseudonym_key_file: Path | None = None


def default_key_dir(store_url: str) -> Path:
    """audit-keys/ beside a SQLite database (sqlite:///data/cetate.db -> data/audit-keys),
    else data/audit-keys."""
    scheme, sep, _ = store_url.partition("://")
    if not sep or scheme == "sqlite":
        return sqlite_path(store_url).with_name("audit-keys")
    return Path("data") / "audit-keys"


def sqlite_path(store: str) -> Path:
    scheme, sep, rest = store.partition("://")
    if not sep:
        return Path(store)
    if scheme != "sqlite":
        raise ValueError(f"Unsupported audit store {store!r}; use sqlite:///path or a path")
    return Path(rest[1:] if rest.startswith("/") else rest)


def config_for(store_url: str, audit_store: str = "", key_dir: str = "", origin: str = "",
               pseudonym_key_file: str = "") -> AuditConfig:
    """The audit configuration from broker settings (empty strings take the defaults). Without
    an audit store of its own the log lives in the broker store's database."""
    keys = Path(key_dir) if key_dir else default_key_dir(audit_store or store_url)
    return AuditConfig(store=audit_store, key_dir=keys, origin=origin or DEFAULT_ORIGIN,
                       pseudonym_key_file=Path(pseudonym_key_file) if pseudonym_key_file
                       else None)


def open_storage(store: str) -> AuditStorage:
    """The storage of a log kept apart from the broker store (a SQLite file of its own)."""
    if not store:
        raise ValueError("the audit log is in the broker store: open it from the store")
    from security.audit.sqlite_log import SQLiteAuditStorage

    return SQLiteAuditStorage(sqlite_path(store))


class Committer(Protocol):
    """Commits queued entries and the log's other writes. Two: `ThreadedCommitter` (a storage's
    own transactions, in a thread of the log's) and the broker store's (broker/store/
    sqlite_audit.py, postgres_audit.py: the entries ride in the store's own transactions)."""

    def put(self, entry: Queued, future: asyncio.Future[int] | None, urgent: bool) -> None:
        """Queue an entry (sealed, to seal, or None: a flush marker); its future, if any, gets
        its index once committed (or the failure). An urgent one is committed at once (with
        whatever else is queued)."""

    def wake(self) -> None:
        """Commit what is queued soon (a tree head is due, or a flush)."""

    def ready(self) -> bool:
        """Whether writes can run now (the store may open after the log)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def add_checkpoint(self, size: int, note: str) -> None: ...

    async def erase_subject(self, subject: str) -> int: ...

    async def recover(self, pseudonyms: Pseudonyms) -> int:
        """Seal and append the kept facts of writes whose broker died before their entries
        were appended (a store that keeps them); how many."""
        ...


class ThreadedCommitter:
    """Group commit on a storage's own transactions: one flusher task drains the queue into one
    storage transaction at a time (in the log's writer thread), so whatever arrives while a
    batch commits forms the next batch (one fsync for the group)."""

    def __init__(self, storage: AuditStorage) -> None:
        self.storage = storage
        self._pending: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="audit-writer")
        self._task: asyncio.Task[None] | None = None

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def start(self) -> None:
        await self._write(self.storage.open)
        self._task = asyncio.create_task(self._flusher(), name="audit-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._write(self.storage.close)
        self._writer.shutdown()

    def ready(self) -> bool:
        return True

    def put(self, entry: Queued, future: asyncio.Future[int] | None, urgent: bool) -> None:
        self._pending.append((entry, future))
        if urgent or len(self._pending) >= GROUP_COMMIT_MAX:
            self._wakeup.set()

    def wake(self) -> None:
        self._wakeup.set()

    async def add_checkpoint(self, size: int, note: str) -> None:
        await self._write(self.storage.add_checkpoint, size, note)

    async def erase_subject(self, subject: str) -> int:
        return await self._write(self.storage.erase_subject, subject)

    async def recover(self, pseudonyms: Pseudonyms) -> int:
        return 0  # no write of the store keeps facts here

    async def _flusher(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = prepare(self._pending[:GROUP_COMMIT_MAX])
                del self._pending[:GROUP_COMMIT_MAX]
                if not batch.bundles:  # only flush markers
                    settle(batch, 0)
                    continue
                try:
                    first, _ = await self._write(self.storage.append_built, batch.bundles)
                except Exception as exc:
                    log.exception("audit append of %d bundles failed", len(batch.bundles))
                    settle(batch, exc)
                    continue
                settle(batch, first)


# An entry as queued: sealed, still to seal (a request's, sealed with its batch), a bundle built
# from a batch sealed elsewhere (the sealing process, security/audit/sealer.py), or None (a
# flush marker: its future is resolved once everything queued before it is committed).
Queued = Sealed | Deferred | Built | None
Pending = tuple[Queued, "asyncio.Future[int] | None"]


@dataclass
class Batch:
    """A drained queue, ready to append: its bundles, in order, and who waits for what."""

    bundles: list[Built]
    # (future, offset of its entry from the first bundle's first | the error that kept it out)
    waiters: list[tuple[asyncio.Future[int], int | Exception]]


def prepare(items: Sequence[Pending]) -> Batch:
    """Seal what is still to seal, in one loop (any thread), and bundle the loose entries
    between two built bundles: an entry that cannot be sealed fails alone, a marker waits for
    the entries before it."""
    bundles: list[Built] = []
    loose: list[Sealed] = []
    waiters: list[tuple[asyncio.Future[int], int | Exception]] = []
    count = 0  # entries before the current one
    for entry, future in items:
        if entry is None:  # a flush marker
            if future is not None:
                waiters.append((future, count - 1))
            continue
        if isinstance(entry, Built):
            if loose:
                bundles.append(build(loose))
                loose = []
            bundles.append(entry)
            count += entry.length
            continue
        if isinstance(entry, Deferred):
            deferred = entry
            try:
                entry = deferred.seal()
            except Exception as exc:
                log.exception("audit entry of %s could not be sealed", deferred.record.action)
                if future is not None:
                    waiters.append((future, exc))
                continue
        if future is not None:
            waiters.append((future, count))
        loose.append(entry)
        count += 1
    if loose:
        bundles.append(build(loose))
    return Batch(bundles, waiters)


def fail(items: Sequence[Pending], error: Exception) -> None:
    """Fail the futures of queued entries that will not be committed; on their loop."""
    settle(Batch([], [(f, error) for _, f in items if f is not None]), error)


def settle(batch: Batch, first: int | Exception) -> None:
    """Resolve a committed batch's futures with their indices (first, first + 1, ...), or fail
    them all; on the futures' loop."""
    for future, offset in batch.waiters:
        if future.done():
            continue
        error = offset if isinstance(offset, Exception) else (
            first if isinstance(first, Exception) else None)
        if error is not None:
            future.set_exception(error)
            future.exception()  # retrieved: a read's entry may have no waiter
        else:
            assert isinstance(offset, int) and isinstance(first, int)
            future.set_result(first + offset)


class AuditLog:
    def __init__(self, config: AuditConfig, storage: AuditStorage | None = None,
                 interval: float = CHECKPOINT_INTERVAL, committer: Committer | None = None,
                 sealer: bool = True) -> None:
        """`storage` serves the reads; `committer` the writes (by default the storage's own
        transactions, in a thread). `sealer`: seal full batches of records in a process of
        their own (security/audit/sealer.py), else on the loop."""
        self.config = config
        self.origin = config.origin
        self.storage = storage or open_storage(config.store)
        self.committer: Committer = committer or ThreadedCommitter(self.storage)
        self.keys = KeyRing(config.key_dir, config.origin)
        self.interval = interval
        self.signer: NoteSigner | None = None
        self.pseudonyms = Pseudonyms(b"")
        self._dirty = False  # entries queued since the last flush marker
        self._unsealed: list[Wire] = []  # records, sealed SEAL_BATCH at a time
        self._sealer: Sealer | None = None  # the sealing process (sealer.py), if it is used
        self._use_sealer = sealer
        self._marker: asyncio.Future[int] | None = None  # the last flush marker
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="audit-reader")
        self._tasks: list[asyncio.Task[None]] = []
        self._sign_lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        await self.committer.start()
        self.signer = await self._read(self.keys.signer)
        key_file = self.config.pseudonym_key_file or self.config.key_dir / "pseudonym.key"
        key = await self._read(read_or_create_secret, key_file)
        self.pseudonyms = Pseudonyms(key)
        if self._use_sealer:
            self._sealer = Sealer(key, self._queue_built)
        self._tasks = [asyncio.create_task(self._ticker(), name="audit-checkpoints")]

    async def close(self) -> None:
        """Flush what is queued, sign a last head, close the storage."""
        try:
            await self.checkpoint()
        except Exception:
            log.exception("could not sign the last audit checkpoint")
        if self._sealer is not None:
            await self._sealer.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.committer.stop()
        await self._read(self.storage.close)
        self._reader.shutdown()

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, *args)

    # -- appending ----------------------------------------------------------------------------

    def submit(self, sealed: Sealed | Deferred, *, urgent: bool = False) -> asyncio.Future[int]:
        """Queue an entry; the future gives its index once committed.

        A non-urgent entry (a read's) waits for the next commit (an urgent entry's, an entity
        write's when the log shares the store's transactions), a full batch or the next tree
        head, whichever comes first: reads then cost a fraction of a commit each.
        """
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._dirty = True
        self.committer.put(sealed, future, urgent)
        return future

    def record(self, record: AuditRecord, time: float | str, request_id: str, status: int,
               pending: int | None = None) -> None:
        """Queue a record, sealed later with a batch of others (in the sealing process);
        nobody waits for it (flush does). `time`: the entry's, or a Unix time (time.time()).
        A read's, or a write's whose facts its store kept durable in the write's transaction
        (`pending`: that row, deleted when this entry is appended)."""
        self._dirty = True
        self._unsealed.append(wire(record, time, request_id, status, pending))
        if len(self._unsealed) >= SEAL_BATCH:
            items, self._unsealed = self._unsealed, []
            if self._sealer is not None:
                self._sealer.seal(items)  # in the sealing process
            else:
                seal_batch(items, self.pseudonyms, self._queue_built)

    def _queue_built(self, built: Built) -> None:
        self.committer.put(built, None, False)

    def _queue_unsealed(self) -> None:
        if self._unsealed:
            items, self._unsealed = self._unsealed, []
            seal_batch(items, self.pseudonyms, self._queue_built)

    async def _seal_unsealed(self) -> None:
        """Hand over the records held back (a last, short batch), and wait until every batch
        handed to the sealing process is back and queued for the committer."""
        if self._sealer is None:
            self._queue_unsealed()
            return
        if self._unsealed:
            items, self._unsealed = self._unsealed, []
            self._sealer.seal(items, start=False)
        await self._sealer.drain()

    async def append(self, sealed: Sealed | Deferred) -> int:
        """Queue an entry and wait until it is durable (committed at once, with whatever else
        is queued)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._dirty = True
        self._queue_unsealed()  # the records before it, in the same commit
        self.committer.put(sealed, future, True)
        return await future

    async def append_record(self, record: AuditRecord, *, time: str, request_id: str,
                            status: int) -> int:
        """A write's record whose facts no store kept: sealed by the committer with its batch,
        durable before this returns."""
        return await self.append(Deferred(record, time, request_id, status, self.pseudonyms))

    @staticmethod
    def expect_entry(record: AuditRecord, request_id: str
                     ) -> tuple[Announced, Token[Announced | None]]:
        """Announce the running write request's record to the store (which may keep its facts
        in the write's own transaction); the token resets it (PENDING_ENTRY.reset)."""
        announced = Announced(record, request_id)
        return announced, PENDING_ENTRY.set(announced)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (or has failed)."""
        if self._dirty:  # something was queued since the last marker
            self._dirty = False
            await self._seal_unsealed()
            self._marker = asyncio.get_running_loop().create_future()
            self.committer.put(None, self._marker, True)
        marker = self._marker
        if marker is None:
            return
        if not marker.done():
            await asyncio.wait([marker])
        if not marker.cancelled():
            marker.exception()  # retrieved: a failure is the entries' waiters' to report

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.committer.ready():
                continue
            try:
                await self.committer.recover(self.pseudonyms)
                await self.checkpoint()
            except Exception:
                log.exception("audit checkpoint failed")

    # -- tree heads ---------------------------------------------------------------------------

    async def checkpoint(self) -> str:
        """The signed checkpoint of the whole committed tree, flushing the queue first.

        A size already signed by the current key (in this or another process) is not signed
        again: the tree only grows, so the stored note for the current size is the current
        head. One signed by a retired key gets the current key's signature added (a note may
        carry several), so it verifies with either.
        """
        await self.flush()
        async with self._sign_lock:
            self.signer = signer = await self._read(self.keys.signer)  # follows rotations
            head = await self._read(self.storage.head)
            existing = await self._read(self.storage.checkpoint_at, head.size)
            if existing is not None:
                text, sigs = split_note(existing)
                current = signer.verifier
                if any(s.name == current.name and s.key_id == current.key_id for s in sigs):
                    return existing
                note = existing + signer.signature_line(text)
            else:
                note = sign_checkpoint(Checkpoint(self.origin, head.size, head.root()), signer)
            await self.committer.add_checkpoint(head.size, note)
            return note

    def verifier_keys(self) -> list[VerifierKey]:
        return self.keys.published()

    async def rotate_key(self) -> VerifierKey:
        self.signer = await self._read(self.keys.rotate)
        return self.signer.verifier

    # -- reading ------------------------------------------------------------------------------

    async def head(self) -> Frontier:
        return await self._read(self.storage.head)

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        return await self._read(self.storage.entries, start, end)

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return await self._read(inclusion_proof, index, size, self.storage.perfect)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return await self._read(consistency_proof, first, second, self.storage.perfect)

    async def query(self, q: EntryQuery) -> list[tuple[int, bytes]]:
        return await self._read(self.storage.query, q)

    async def export(self, start: int, end: int | None = None,
                     older: Sequence[int] = ()) -> bytes:
        """An export of [start, end) against a checkpoint signed now (security/audit/export)."""
        from security.audit.export import build_export

        note = await self.checkpoint()
        return await self._read(build_export, self.storage, note, start, end, tuple(older))

    async def erase_subject(self, subject: str) -> int:
        """Erase the kept details of a subject named in clear (pseudonymised here)."""
        return await self.erase_pseudonym(self.pseudonyms(subject))

    async def erase_pseudonym(self, pseudonym: str) -> int:
        """Delete the details and salts of every entry of that subject; how many entries had
        some. The leaves stay (the tree verifies as before); their commitments become
        unlinkable to the person."""
        return await self.committer.erase_subject(pseudonym)

