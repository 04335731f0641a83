"""HTTP polling (httpx): a vendor's REST API, read every `interval` seconds.

With a cursor (`cursor_param` + `position_field`: the API answers the items after a position),
a restarted adapter asks for what follows its checkpoint. Without one, each poll reads the
vendor's current state again: positions count items, and a restart re-reads the state, which
idempotent upserts make harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from adapters.sdk.hooks import Position, Raw
from adapters.sdk.sources.base import BaseSource

log = logging.getLogger("cetate.adapter")

POLL_TIMEOUT = 10.0  # seconds for one poll: a slow vendor API is retried at the next interval


class HttpPolling(BaseSource):
    """GET `url` every `interval` s; each item of the JSON answer (the array itself, or the
    array under `items`) is one Raw. `polls` bounds the number of polls (None: forever)."""

    def __init__(self, url: str, *, stream: str = "http", interval: float = 5.0,
                 items: str | None = None, cursor_param: str | None = None,
                 position_field: str | None = None, polls: int | None = None,
                 headers: Mapping[str, str] | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        if (cursor_param is None) != (position_field is None):
            raise ValueError("cursor_param and position_field go together")
        self.url, self.stream, self.interval = url, stream, interval
        self.items, self.cursor_param, self.position_field = items, cursor_param, position_field
        self.polls, self.headers, self._client = polls, dict(headers or {}), client

    def _items(self, body: Any) -> list[Any] | None:
        found = body.get(self.items) if self.items and isinstance(body, dict) else body
        if isinstance(found, list):
            return found
        return [found] if isinstance(found, dict) else None

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        after = checkpoint.get(self.stream) if self.cursor_param else None
        counter = 0
        client = self._client or httpx.AsyncClient(timeout=POLL_TIMEOUT, headers=self.headers)
        try:
            poll, fresh = 0, False
            while self.polls is None or poll < self.polls:
                if poll and not fresh:  # a cursor API with more to give is read on at once
                    await asyncio.sleep(self.interval)
                poll += 1
                fresh = False
                params = {self.cursor_param: str(after)} \
                    if self.cursor_param and after is not None else {}
                try:
                    response = await client.get(self.url, params=params)
                    response.raise_for_status()
                except httpx.HTTPError as exc:  # vendor down: try again next poll
                    log.warning("poll of %s failed: %s", self.url, exc)
                    continue
                try:
                    items = self._items(response.json())
                except ValueError as exc:
                    counter += 1
                    yield Raw(self.stream, self._bad_position(after, counter),
                              response.text[:10_000],
                              f"the answer of {self.url} is not JSON: {exc}")
                    continue
                if items is None:
                    counter += 1
                    yield Raw(self.stream, self._bad_position(after, counter),
                              response.text[:10_000],
                              f"the answer of {self.url} holds no items"
                              + (f" under {self.items!r}" if self.items else ""))
                    continue
                for item in items:
                    if self.position_field is None:
                        counter += 1
                        yield Raw(self.stream, counter, item)
                        continue
                    position = item.get(self.position_field) if isinstance(item, dict) else None
                    if not isinstance(position, int | str) or isinstance(position, bool):
                        yield Raw(self.stream, after if after is not None else 0, item,
                                  f"item without a {self.position_field!r} position")
                        continue
                    if after is not None and _not_after(position, after):
                        continue  # an API answering "from" rather than "after" the cursor
                    after, fresh = position, True
                    yield Raw(self.stream, position, item)
        finally:
            if self._client is None:
                await client.aclose()


    def _bad_position(self, after: Position | None, counter: int) -> Position:
        """Where a page that could not be read sits: with a cursor, still at the cursor (a
        checkpoint must never go back to the start of the feed); else its count."""
        if self.cursor_param is not None:
            return after if after is not None else 0
        return counter


def _not_after(position: Position, after: Position) -> bool:
    try:
        return position <= after  # type: ignore[operator]
    except TypeError:
        return False
