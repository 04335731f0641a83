"""Notifications in one broker process: the planner the store calls in its write transactions,
the dispatcher that delivers the outbox, and the clock of periodic subscriptions (the I/O edge
that ties broker/subscriptions to a store and the @context resolver).

    service = Notifications(store, resolver, policy, base_url=...)   # before store.open()
    await service.start(); ...; service.written()  # after a write: wake the dispatcher
    await service.stop()

Every replica runs one: the outbox leases rows (outbox.py), and a periodic tick is taken by
compare-and-set (Store.enqueue_periodic), so replicas share the work without doing it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from broker.ld.netpolicy import AddressPolicy
from broker.ld.resolver import HOSTED_PATH, ContextResolver
from broker.store.protocol import EntityQuery, EntitySelector, Store, SubscriptionRow
from broker.subscriptions.dispatcher import Dispatcher, Limits, OutcomeHook
from broker.subscriptions.http_sender import HttpSender
from broker.subscriptions.mqtt_sender import MqttSender
from broker.subscriptions.notification import OWNER, Outgoing, Sent
from broker.subscriptions.outbox import Draft, PendingNotification
from broker.subscriptions.plan import Planner, plan_periodic, render_draft
from broker.subscriptions.schedule import expired, next_periodic
from broker.subscriptions.sender import Sender
from broker.subscriptions.subscription import Subscription, from_record

log = logging.getLogger("cetate.notifications")

PERIODIC_POLL = 1.0  # seconds between looks at periodic subscriptions (timeInterval >= 1 s)
PERIODIC_LIMIT = 1000  # entities one periodic notification carries at most (plan.py too)
# The access-control filter of a draft at delivery: its owner's view, or None (nothing owed).
Screen = Callable[[SubscriptionRow, Subscription, Draft], Draft | None]
PARSED_CACHE = 10_000  # parsed subscriptions kept, keyed by their record's modifiedAt


def link_of(record: dict[str, Any], base_url: str) -> str | None:
    """The Link header URL kept with a record whose @context has no URL of its own (inline):
    the broker hosts a copy at subscription time (service.host_context)."""
    hosted = record.get("hostedContext")
    return f"{base_url}{HOSTED_PATH}{hosted}" if isinstance(hosted, str) else None


class Notifications:
    def __init__(self, store: Store, resolver: ContextResolver, policy: AddressPolicy, *,
                 base_url: str, senders: dict[str, Sender] | None = None,
                 limits: Limits | None = None, on_result: OutcomeHook | None = None,
                 clock: Callable[[], float] = time.time,
                 screen: Screen | None = None,
                 ) -> None:
        self.store = store
        # The access-control filter applied at delivery (broker/http/access.py): the
        # subscription's owner and purpose, the policy in force now.
        self.screen = screen
        self.resolver = resolver
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.planner = Planner()
        store.observe(self.planner)
        if senders is None:
            http, mqtt = HttpSender(policy), MqttSender(policy)
            senders = {"http": http, "https": http, "mqtt": mqtt, "mqtts": mqtt}
        self.dispatcher = Dispatcher(store.outbox, senders, limits=limits, clock=clock,
                                     on_result=on_result, prepare=self.prepare)
        self._parsed: OrderedDict[tuple[str, str], tuple[Any, Subscription]] = OrderedDict()
        self._periodic_subs: dict[tuple[str, str], SubscriptionRow] = {}  # by (tenant, id)
        self._periodic_version: int | None = None  # the subscriptions' version they are of
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.dispatcher.run(), name="cetate-dispatcher"),
                       loop.create_task(self._periodic(), name="cetate-periodic")]

    async def stop(self, grace: float = 5.0) -> None:
        self._stopping.set()
        await self.dispatcher.stop(grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def written(self) -> None:
        """A write committed: if it planned notifications, claim them now, not at the next
        poll. (Other replicas' writes are found by the dispatcher's poll.)"""
        # Any write once something was ever planned: on PostgreSQL transactions commit in any
        # order, so "the count moved since last time" could miss a row committed after the
        # wake it would have needed (found by H-PG). wake() coalesces; claiming nothing is cheap.
        if self.planner.planned:
            self.dispatcher.wake()

    # -- subscriptions, parsed once per version of their record --------------------------------
    def subscription(self, row: SubscriptionRow) -> Subscription:
        key = (row.tenant, row.id)
        stamp = row.record.get("subscription", {}).get("modifiedAt")
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == stamp:
            self._parsed.move_to_end(key)
            return cached[1]
        sub = from_record(row.record, row.tenant)
        self._parsed[key] = (stamp, sub)
        if len(self._parsed) > PARSED_CACHE:
            self._parsed.popitem(last=False)
        return sub

    # -- delivery -------------------------------------------------------------------------------
    async def prepare(self, row: PendingNotification) -> Outgoing | None:
        """The message of a draft row, rendered now; None if its subscription is gone, paused
        or expired (nothing is owed any more)."""
        draft = row.draft
        assert draft is not None
        stored = await self.store.get_subscription(draft.tenant, draft.subscription_id)
        if stored is None:
            return None
        sub = self.subscription(stored)
        now = self.clock()
        if not sub.is_active or expired(sub, now):
            return None
        if self.screen is not None:
            screened = self.screen(stored, sub, draft)
            if screened is None:  # nothing the owner may see: nothing is owed
                return None
            draft = screened
        terms = await self.resolver.term_map(sub.notification_context)
        outgoing = render_draft(sub, draft, terms, now=now,
                                link=link_of(stored.record, self.base_url))
        return replace(outgoing, audit=sent(stored, sub, draft))

    # -- periodic subscriptions (timeInterval) --------------------------------------------------
    async def _periodic(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:  # the store is down or busy: try again at the next poll
                log.exception("Periodic notifications failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), PERIODIC_POLL)

    async def _periodic_rows(self) -> list[SubscriptionRow]:
        """The periodic subscriptions, read again only when the subscriptions change (their
        version; not every second: with thousands of subscriptions that read would be most of
        a tick's work). Their last ticks are kept here, from the ticks this process won."""
        version = await self.store.subscriptions_version()
        if version != self._periodic_version:
            version, rows = await self.store.subscriptions()
            self._periodic_subs = {(r.tenant, r.id): r for r in rows
                                   if self.subscription(r).periodic}
            self._periodic_version = version
        return list(self._periodic_subs.values())

    async def tick(self) -> int:
        """Record the notifications every due periodic subscription owes; how many."""
        made = 0
        for row in await self._periodic_rows():
            sub = self.subscription(row)
            if not sub.is_active:
                continue
            now = self.clock()
            due = next_periodic(sub, row.periodic_last, now)
            if due is None or due > now:
                continue
            query = EntityQuery(
                selectors=tuple(EntitySelector(id=s.id, id_pattern=s.id_pattern, types=s.types)
                                for s in sub.entities) or None,
                q=sub.q, geo=sub.geo_q, scope_q=sub.scope_q, limit=PERIODIC_LIMIT)
            found = await self.store.query_entities(row.tenant, query)
            planned = plan_periodic(sub, found.entities, now)
            if await self.store.enqueue_periodic(row.tenant, row.id, row.periodic_last, now,
                                                 planned):
                self._periodic_subs[(row.tenant, row.id)] = replace(row, periodic_last=now)
                made += planned is not None
            else:  # another replica had this tick: its time is in the store, read it there
                fresh = await self.store.get_subscription(row.tenant, row.id)
                if fresh is None:
                    self._periodic_subs.pop((row.tenant, row.id), None)
                else:
                    self._periodic_subs[(row.tenant, row.id)] = fresh
        if made:
            self.dispatcher.wake()
        return made


def sent(stored: SubscriptionRow, sub: Subscription, draft: Draft) -> Sent:
    """The audit facts of a rendered draft: the entities it tells of (after the owner's filter),
    to whom and why."""
    owner = stored.record.get(OWNER)
    subject = owner.get("subject") if isinstance(owner, dict) else None
    roles = tuple(sorted(str(r) for r in owner.get("roles") or ())) \
        if isinstance(owner, dict) else ()
    screening = draft.screening
    return Sent(owner=subject if isinstance(subject, str) else None, roles=roles,
                purpose=sub.purpose,
                entity_ids=tuple(dict.fromkeys(i.change.current["id"] for i in draft.items)),
                types=tuple(dict.fromkeys(t for i in draft.items
                                          for t in i.change.current["type"])),
                masked=screening.masked if screening else (),
                rules=screening.rules if screening else ())
