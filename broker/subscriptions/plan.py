"""From the changes of one write to the outbox rows it owes: what the store's write path calls,
inside its transaction. Pure.

    entries = plan_notifications(subscriptions, changes, now=time.time(),
                                 terms=lambda sub: term_maps[sub.id],
                                 last_notified=last_notification_times)
    # then, in the same transaction as the change: INSERT one outbox row per entry

One notification per subscription and write: a batch operation that changes 100 matching
entities sends each subscriber one notification whose data holds the 100 entities (clause
5.3.1 allows several entities in data), not 100 notifications. Throttling sets the row's due
time (schedule.throttle_due); the row is never dropped.

`terms` gives the TermMap of a subscription's notification @context: resolving a @context is
I/O (broker.ld.ContextResolver), so the caller does it when it loads the subscriptions, and
keeps the maps with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from broker.entities.render import render_entity
from broker.ld.termmap import TermMap
from broker.subscriptions.index import SubscriptionIndex
from broker.subscriptions.match import (
    Change,
    Entity,
    Match,
    evaluate,
    render_options,
    selects,
)
from broker.subscriptions.notification import (
    Outgoing,
    context_url,
    new_notification_id,
    notification_body,
    prepare,
)
from broker.subscriptions.schedule import instant, throttle_due
from broker.subscriptions.subscription import Subscription

MAX_ENTITIES_PER_NOTIFICATION = 1000  # a larger write is split into several notifications


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One row to insert into the outbox (outbox.py documents the table)."""

    outgoing: Outgoing
    due: float  # epoch seconds
    created_at: float
    triggers: tuple[str, ...]  # what fired, per entity of the data (for logs and metrics)


def _matches(subscriptions: SubscriptionIndex | Iterable[Subscription],
             changes: Sequence[Change], terms: Callable[[Subscription], TermMap]
             ) -> list[tuple[Subscription, list[Match]]]:
    """Each subscription with what it matched, in subscription order; none without a match."""
    found: dict[str, tuple[Subscription, list[Match]]] = {}
    order: dict[str, int] = {}
    index, every = (subscriptions, []) if isinstance(subscriptions, SubscriptionIndex) \
        else (None, list(subscriptions))
    for change in changes:
        candidates = index.candidates(change) if index is not None else every
        for position, sub in enumerate(candidates):
            match = evaluate(sub, change, terms(sub))
            if match is not None:
                found.setdefault(sub.id, (sub, []))[1].append(match)
                order.setdefault(sub.id, position)
    if index is not None:
        return [found[k] for k in sorted(found, key=index.position)]
    return [found[k] for k in sorted(found, key=order.__getitem__)]


def plan_notifications(subscriptions: SubscriptionIndex | Iterable[Subscription],
                       changes: Sequence[Change], *,
                       now: float, terms: Callable[[Subscription], TermMap],
                       link: Callable[[Subscription], str | None] = context_url,
                       last_notified: Mapping[str, float] | None = None,
                       new_id: Callable[[], str] = new_notification_id) -> list[OutboxEntry]:
    """The outbox rows that `changes` (one write, one tenant or several) owe `subscriptions`
    (an index, so that only the candidates of each change are evaluated, or any iterable).
    `link` gives the @context URL of a JSON notification's Link header (for an inline
    @context, the broker's hosted copy); `last_notified` maps subscription ids to the time of
    their last notification, for throttling: pass the due time of the subscription's latest
    outbox row when one is pending (else its last delivery), so that a burst of writes is
    spread one notification per throttling window instead of all leaving together."""
    entries: list[OutboxEntry] = []
    notified_at = instant(now)
    for sub, matches in _matches(subscriptions, changes, terms):
        for start in range(0, len(matches), MAX_ENTITIES_PER_NOTIFICATION):
            chunk = matches[start:start + MAX_ENTITIES_PER_NOTIFICATION]
            body = notification_body(sub, [m.entity for m in chunk], notification_id=new_id(),
                                     notified_at=notified_at)
            last = (last_notified or {}).get(sub.id)
            entries.append(OutboxEntry(prepare(sub, body, link=link(sub)),
                                       throttle_due(sub, last, now), now,
                                       tuple(m.trigger for m in chunk)))
    return entries


def plan_periodic(sub: Subscription, entities: Iterable[Entity], *, now: float, terms: TermMap,
                  link: Callable[[Subscription], str | None] = context_url,
                  new_id: Callable[[], str] = new_notification_id) -> OutboxEntry | None:
    """The notification a periodic subscription (timeInterval) owes at `now`, from the
    entities a store query returned for it (filtered again here with `selects`, so the query
    may be broader); None when none matches (clause 5.3.1: data holds at least one entity).
    schedule.next_periodic says when to call this next."""
    opts = render_options(sub)
    data = [render_entity(e, terms, opts) for e in entities if selects(sub, e)]
    if not data:
        return None
    data = data[:MAX_ENTITIES_PER_NOTIFICATION]
    body = notification_body(sub, data, notification_id=new_id(), notified_at=instant(now))
    return OutboxEntry(prepare(sub, body, link=link(sub)), now, now, ("timeInterval",))
