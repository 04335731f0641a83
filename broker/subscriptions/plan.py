"""From the entities one write changed to the notifications it owes, and from a recorded draft
to the message that goes out. Pure.

    planner = Planner()                     # the store's WriteObserver (broker.store.protocol)
    store.observe(planner)
    # in the write transaction, the engine calls planner.stale / load / plan and inserts the
    # PlannedWrite it returns; at delivery time:
    out = render_draft(sub, draft, terms, now=time.time(), link=url)

One notification per subscription and write: a batch that changes 100 matching entities sends
each subscriber one notification whose data holds the 100 entities (clause 5.3.1 allows
several entities in data), not 100. The changes of a write are kept once, however many
subscriptions they fire; what each subscription sees is rendered when it is sent, with its
@context resolved then (I/O has no place in a write transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from broker.ld.termmap import TermMap
from broker.store.protocol import Entity, EntityWrite, SubscriptionRow
from broker.subscriptions.index import SubscriptionIndex
from broker.subscriptions.match import Change, fires, notification_entity, selects
from broker.subscriptions.notification import (
    Outgoing,
    context_url,
    new_notification_id,
    notification_body,
    prepare,
)
from broker.subscriptions.outbox import Draft, PlannedNotification, PlannedWrite
from broker.subscriptions.schedule import instant
from broker.subscriptions.subscription import Subscription, from_record

log = logging.getLogger("cetate.subscriptions")

MAX_ENTITIES_PER_NOTIFICATION = 1000  # a larger write is split into several notifications
PERIODIC = "timeInterval"  # the trigger of a periodic notification's items


def _changes(writes: Sequence[EntityWrite], now: float) -> list[Change]:
    stamp = instant(now)
    return [Change.between(w.tenant, w.before, w.after, stamp) for w in writes]


def plan_changes(index: SubscriptionIndex, changes: Sequence[Change],
                 new_id: Callable[[], str] = new_notification_id) -> PlannedWrite | None:
    """The rows `changes` (one write) owe the subscriptions of `index`; None when none fires.
    Only the changes some subscription fired on are kept."""
    # Keyed by (tenant, id): a write may span tenants, and ids are unique within one only.
    fired: dict[tuple[str, str], tuple[Subscription, list[tuple[str, int]]]] = {}
    kept: dict[int, int] = {}  # position in `changes` -> position in PlannedWrite.changes
    for position, change in enumerate(changes):
        for sub in index.candidates(change):
            trigger = fires(sub, change)
            if trigger is None:
                continue
            slot = kept.setdefault(position, len(kept))
            fired.setdefault((sub.tenant, sub.id), (sub, []))[1].append((trigger, slot))
    if not fired:
        return None
    rows: list[PlannedNotification] = []
    for sub, items in sorted(fired.values(), key=lambda f: index.position(f[0])):
        for start in range(0, len(items), MAX_ENTITIES_PER_NOTIFICATION):
            rows.append(PlannedNotification(
                tenant=sub.tenant, subscription_id=sub.id, notification_id=new_id(),
                endpoint_key=sub.notification.endpoint.key,
                items=tuple(items[start:start + MAX_ENTITIES_PER_NOTIFICATION]),
                throttling=sub.throttling))
    order = sorted(kept, key=kept.__getitem__)
    return PlannedWrite(tuple(changes[p] for p in order), tuple(rows))


def plan_periodic(sub: Subscription, entities: Iterable[Entity], now: float,
                  new_id: Callable[[], str] = new_notification_id) -> PlannedWrite | None:
    """The notification a periodic subscription (timeInterval) owes at `now`, from the entities
    a store query returned for it (filtered again with `selects`, so the query may be
    broader); None when none matches (clause 5.3.1: data holds at least one entity)."""
    stamp = instant(now)
    changes = tuple(Change(sub.tenant, None, e, frozenset(), stamp)
                    for e in entities if selects(sub, e))[:MAX_ENTITIES_PER_NOTIFICATION]
    if not changes:
        return None
    row = PlannedNotification(sub.tenant, sub.id, new_id(), sub.notification.endpoint.key,
                              tuple((PERIODIC, i) for i in range(len(changes))))
    return PlannedWrite(changes, (row,))


class Planner:
    """The subscriptions' WriteObserver: holds an index of the subscriptions of one version
    (every tenant's), replaced whole when the store says they changed. Called from the store's
    writer (a thread on SQLite); its state is swapped in one assignment, never mutated."""

    def __init__(self, new_id: Callable[[], str] = new_notification_id) -> None:
        self._state: tuple[int, SubscriptionIndex] = (-1, SubscriptionIndex(()))
        self._new_id = new_id
        self.planned = 0  # notifications planned so far (the app wakes its dispatcher on it)

    def stale(self, version: int) -> bool:
        return self._state[0] != version

    def load(self, version: int, subscriptions: Sequence[SubscriptionRow]) -> None:
        subs = []
        for row in subscriptions:
            try:
                subs.append(from_record(row.record, row.tenant))
            except Exception:  # one unreadable record must not stop every write
                log.exception("Subscription %s of tenant %r cannot be read; it is skipped",
                              row.id, row.tenant)
        self._state = (version, SubscriptionIndex(subs))

    def plan(self, writes: Sequence[EntityWrite], now: float) -> PlannedWrite | None:
        index = self._state[1]
        if not len(index):
            return None
        planned = plan_changes(index, _changes(writes, now), self._new_id)
        if planned is not None:
            self.planned += len(planned.notifications)
        return planned


# -- at delivery time ---------------------------------------------------------------------------

def render_draft(sub: Subscription, draft: Draft, terms: TermMap, *, now: float,
                 link: str | None = None) -> Outgoing:
    """The message for a recorded draft: each item rendered as the subscription says now
    (notification.attributes, format, sysAttrs, lang, showChanges), compacted with `terms`
    (the TermMap of sub.notification_context). `link` is the @context URL for the Link header
    when context_url(sub) has none (an inline context the broker hosts)."""
    data = [notification_entity(sub, item.change, item.trigger, terms) for item in draft.items]
    body = notification_body(sub, data, notification_id=draft.notification_id,
                             notified_at=instant(now))
    return prepare(sub, body, link=link if link is not None else context_url(sub))
