"""Delivery of the outbox's pending notifications (the I/O edge that drives the senders).

    dispatcher = Dispatcher(outbox, {"http": http, "https": http, "mqtt": mqtt, "mqtts": mqtt})
    task = asyncio.create_task(dispatcher.run())
    ...; dispatcher.wake()      # after a commit that wrote outbox rows: no poll delay
    await dispatcher.stop()

Isolation (ARCHITECTURE.md invariant 3, "one dead receiver never delays the others"): every
receiver (endpoint key, scheme://host:port) has its own lane, a queue drained by at most
`Limits.per_endpoint` concurrent deliveries, each bounded by its timeout. A receiver that hangs
fills its own lane; the dispatcher then stops claiming its rows (`skip`), and every other lane
goes on. A failed attempt is rescheduled with backoff.py's delay (or the receiver's Retry-After,
or the endpoint's cooldown, whichever is longest), so a receiver that is down gets its backlog
once it is back; one that fails for good (a 4xx, a refused address) is marked failed.

Ordering: deliveries to one receiver overlap (per_endpoint > 1) and retries come later, so a
receiver may see notifications out of order; each carries notifiedAt and the entities'
modifiedAt (with sysAttrs) to order by, and an id to drop duplicates by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from broker.subscriptions.backoff import Backoff
from broker.subscriptions.notification import Outgoing
from broker.subscriptions.outbox import Outbox, PendingNotification
from broker.subscriptions.sender import Outcome, Result, Sender

log = logging.getLogger("cetate.notifications")

# (the row, the result of its attempt, the message sent if one was rendered)
OutcomeHook = Callable[[PendingNotification, Result, Outgoing | None], None]
Preparer = Callable[[PendingNotification], Awaitable[Outgoing | None]]
"""Renders a draft row into the message to send, at delivery time (service.py); None when
nothing is owed any more (the subscription is gone or paused)."""


@dataclass(frozen=True, slots=True)
class Limits:
    per_endpoint: int = 8  # concurrent deliveries to one receiver
    queue_per_endpoint: int = 64  # claimed rows waiting for one receiver before we skip it
    batch: int = 256  # rows per claim
    # Seconds a claim holds a row; renewed every third of it while this dispatcher lives, so
    # the rows of a process that died are sent by another (or its restart) within this time.
    lease: float = 30.0
    poll_interval: float = 1.0  # seconds between claims when nothing wakes the dispatcher
    # Outcomes being recorded at once: a lane goes on to its next delivery while the store
    # commits the last one (the row stays leased meanwhile), so the fsync of a durable store
    # is shared by many outcomes instead of paced by one receiver's lane; this bounds them.
    recording: int = 1024


@dataclass
class _Lane:
    key: str
    queue: asyncio.Queue[PendingNotification] = field(default_factory=asyncio.Queue)
    workers: int = 0
    in_flight: int = 0
    cooldown_until: float = 0.0

    @property
    def load(self) -> int:
        return self.queue.qsize() + self.in_flight


class Dispatcher:
    """Claims due outbox rows and delivers them through the sender for their URI scheme."""

    def __init__(self, outbox: Outbox, senders: Mapping[str, Sender], *,
                 backoff: Backoff | None = None, limits: Limits | None = None,
                 clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 on_result: OutcomeHook | None = None,
                 prepare: Preparer | None = None) -> None:
        self.outbox = outbox
        self.senders = dict(senders)
        self.backoff = backoff or Backoff()
        self.limits = limits or Limits()
        self.clock = clock
        self.rand = rand
        self.on_result = on_result
        self.prepare = prepare
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._recordings: set[asyncio.Task[None]] = set()
        self._record_slots = asyncio.Semaphore(self.limits.recording)
        self._wake = asyncio.Event()
        self._stopping = False
        self._next_due: float | None = None  # the earliest retry this dispatcher scheduled

    # -- the loop -------------------------------------------------------------------------------
    def wake(self) -> None:
        """Claim now: rows were just committed (or a lane has room again)."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and dispatch until stop(); renew the leases held every third of a lease."""
        renewed = self.clock()
        while not self._stopping:
            try:
                if self.clock() - renewed >= self.limits.lease / 3:
                    renewed = self.clock()
                    await self.outbox.renew(renewed, self.limits.lease)
                claimed = await self.run_once()
            except Exception:  # the store is down or busy: wait and claim again
                log.exception("Claiming notifications failed")
                claimed = 0
            if claimed >= self.limits.batch:
                continue  # more may be due right away
            await self._sleep()

    async def _sleep(self) -> None:
        timeout = min(self.limits.poll_interval, self.limits.lease / 3)
        if self._next_due is not None:
            timeout = max(0.0, min(timeout, self._next_due - self.clock()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def run_once(self) -> int:
        """One claim: lease the due rows of receivers with room, queue them. The count."""
        now = self.clock()
        if self._next_due is not None and self._next_due <= now:
            self._next_due = None
        full = frozenset(k for k, lane in self._lanes.items()
                         if lane.load >= self.limits.queue_per_endpoint)
        rows = await self.outbox.claim(now, self.limits.batch, self.limits.lease, full)
        for row in rows:
            if self._stopping:  # stop() came during the claim: give the rows straight back
                await self.outbox.postpone(row, now)
            else:
                self._enqueue(row)
        return len(rows)

    def _enqueue(self, row: PendingNotification) -> None:
        lane = self._lanes.get(row.endpoint_key)
        if lane is None:
            lane = self._lanes[row.endpoint_key] = _Lane(row.endpoint_key)
        lane.queue.put_nowait(row)
        if lane.workers < self.limits.per_endpoint:
            lane.workers += 1
            task = asyncio.get_running_loop().create_task(self._work(lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self, lane: _Lane) -> None:
        try:
            while not lane.queue.empty() and not self._stopping:
                row = lane.queue.get_nowait()
                was_full = lane.load + 1 >= self.limits.queue_per_endpoint
                lane.in_flight += 1
                try:
                    await self._deliver(lane, row)
                finally:
                    lane.in_flight -= 1
                if was_full:
                    self.wake()  # its rows were skipped at the last claim: claim them now
        finally:
            lane.workers -= 1
            if lane.workers == 0 and lane.load == 0 and lane.cooldown_until <= self.clock():
                self._lanes.pop(lane.key, None)

    # -- one delivery ---------------------------------------------------------------------------
    async def _deliver(self, lane: _Lane, row: PendingNotification) -> None:
        now = self.clock()
        try:
            if lane.cooldown_until > now:
                await self.outbox.postpone(row, lane.cooldown_until)
                return
            try:
                outgoing = await self._outgoing(row)
            except Exception as exc:  # e.g. its @context is unreachable now: try again later
                log.warning("Rendering notification %s failed: %r", row.notification_id, exc)
                await self._record(lane, row, None,
                                   Result(Outcome.RETRY, f"rendering failed: {exc}"))
                return
            if outgoing is None:
                await self.outbox.discard(row)
                return
            result = await self._send(outgoing)
        except Exception:  # the outbox failed to record: the lease runs out, the row comes back
            log.exception("Recording the outcome of notification %s failed", row.notification_id)
            return
        await self._record_slots.acquire()
        task = asyncio.get_running_loop().create_task(self._recorded(lane, row, outgoing,
                                                                     result))
        self._recordings.add(task)
        task.add_done_callback(self._recordings.discard)

    async def _recorded(self, lane: _Lane, row: PendingNotification, outgoing: Outgoing,
                        result: Result) -> None:
        try:
            await self._record(lane, row, outgoing, result)
        except Exception:  # the lease runs out and the row comes back: at least once
            log.exception("Recording the outcome of notification %s failed", row.notification_id)
        finally:
            self._record_slots.release()

    async def _outgoing(self, row: PendingNotification) -> Outgoing | None:
        if row.outgoing is not None:
            return row.outgoing
        if self.prepare is None:
            raise RuntimeError("A draft row needs the dispatcher's prepare hook")
        return await self.prepare(row)

    async def _send(self, outgoing: Outgoing) -> Result:
        scheme = urlsplit(outgoing.uri).scheme.lower()
        sender = self.senders.get(scheme)
        if sender is None:
            return Result(Outcome.FAILED, f"no sender for {scheme}:// endpoints")
        try:
            return await sender.send(outgoing)
        except Exception as exc:  # a sender bug must not stop the lane
            log.exception("Sender for %s raised", scheme)
            return Result(Outcome.RETRY, f"internal error: {type(exc).__name__}")

    async def _record(self, lane: _Lane, row: PendingNotification, outgoing: Outgoing | None,
                      result: Result) -> None:
        now = self.clock()
        if result.outcome is Outcome.DELIVERED:
            await self.outbox.delivered(row, now, result)
            if row.attempt > 0:  # a retry got through: the receiver is back, and its backlog
                await self.outbox.expedite(lane.key, now)  # goes now, not at each row's time
                self.wake()
        else:
            cooldown = outgoing.cooldown if outgoing is not None else None
            if cooldown:
                lane.cooldown_until = max(lane.cooldown_until, now + cooldown)
            attempt = row.attempt + 1
            first = row.first_attempt_at if row.first_attempt_at is not None else now
            if result.outcome is Outcome.FAILED or self.backoff.gives_up(attempt, first, now):
                await self.outbox.failed(row, now, result)
                log.warning("Notification %s to %s failed for good: %s",
                            row.notification_id, lane.key, result.detail)
            else:
                delay = max(self.backoff.delay(attempt, self.rand()),
                            result.retry_after or 0.0, cooldown or 0.0)
                due = now + delay
                await self.outbox.reschedule(row, due, now, result)
                self._next_due = due if self._next_due is None else min(self._next_due, due)
                self.wake()  # re-arm the sleep with the earlier due time
        if self.on_result is not None:
            self.on_result(row, result, outgoing)

    # -- shutdown -------------------------------------------------------------------------------
    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; let deliveries in progress finish for `grace` seconds, then cancel
        them. Queued rows not yet attempted are given back (postponed to now); a cancelled one
        comes back when its lease runs out."""
        self._stopping = True
        self.wake()
        for lane in self._lanes.values():
            while not lane.queue.empty():
                row = lane.queue.get_nowait()
                with contextlib.suppress(Exception):
                    await self.outbox.postpone(row, self.clock())
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._recordings:  # outcomes on their way to the store: let them land
            await asyncio.wait(set(self._recordings), timeout=grace)
        for sender in {id(s): s for s in self.senders.values()}.values():
            with contextlib.suppress(Exception):
                await sender.aclose()
