"""The filters of the audit query API (security/audit/log.py, bundles.py, the storages)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EntryQuery:
    """Filters of the audit query API; None means any. Times are entry time strings (UTC)."""

    since: str | None = None
    until: str | None = None
    subject: str | None = None  # a pseudonym
    tenant: str | None = None
    entity: str | None = None
    action: str | None = None
    purpose: str | None = None
    decision: str | None = None
    after: int = 0  # first index to consider (paging)
    limit: int = 100
