"""Time rules of subscriptions: throttling, periodic notifications, cooldown, expiry. Pure.

Times are epoch seconds (float) here, as the outbox orders rows by them; the subscription's
members are ISO 8601 strings (broker.entities.clock), converted with `epoch` and `instant`.

Throttling (clause 5.2.12: a notification is not sent before `throttling` seconds have passed
since the last one): Cetate holds the notification back until the window ends instead of
dropping it, so nothing recorded in the outbox is lost; `throttle_due` is when it may go.
"""

from __future__ import annotations

from datetime import UTC, datetime

from broker.entities.clock import format_instant
from broker.subscriptions.subscription import Subscription, status_of


def epoch(text: str) -> float:
    """Epoch seconds of a broker date-time (YYYY-MM-DDTHH:MM:SS.mmmZ or any ISO 8601 with Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def instant(seconds: float) -> str:
    """The broker date-time of epoch seconds."""
    return format_instant(datetime.fromtimestamp(seconds, UTC))


def status(sub: Subscription, now: float) -> str:
    """active, paused or expired (clause 5.2.12)."""
    return status_of(sub, instant(now))


def expired(sub: Subscription, now: float) -> bool:
    return sub.expires_at is not None and epoch(sub.expires_at) <= now


def throttle_due(sub: Subscription, last_notification: float | None, now: float) -> float:
    """The earliest time a notification of `sub` may be sent."""
    if sub.throttling is None or last_notification is None:
        return now
    return max(now, last_notification + sub.throttling)


def next_periodic(sub: Subscription, last: float | None, now: float) -> float | None:
    """When a periodic subscription (timeInterval) is due next; None if it is not periodic or
    will not run again (expired). A missed tick is not repeated: after downtime the next
    notification goes at once, then one interval at a time."""
    if sub.time_interval is None or expired(sub, now):
        return None
    if last is None:
        return now
    due = last + sub.time_interval
    return due if due > now else now


def cooldown_until(failed_at: float, cooldown: float | None) -> float:
    """Endpoint cooldown (clause 5.2.15): no attempt to an endpoint before this after a
    failure."""
    return failed_at + (cooldown or 0.0)
