"""The back office's three streams, as SDK sources (adapters.sdk.sources has no GTFS zip or
JSON-lines-over-HTTP reader, hence these small ones).

- "gtfs@<digest>": the feed's data lines, position = file rank * LINE_STRIDE + line number.
  The feed is read whole at each start (it is small) and its stops and products handed to the
  adapter before the first line, so taps are checked against it even when its lines were
  published by an earlier run; a new version of the feed is a new stream.
- "taps": the tap log, position = seq. The log has no gaps, so a line's seq is known even when
  its JSON is broken, and a broken line is a dead letter at its own position.
- "hours": closed hours with all their taps, position = the hour's epoch seconds.

The tap and hour streams wait for the feed: an unknown stop is only unknown once the feed is in.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from adapters.sdk.errors import BadRecord
from adapters.sdk.hooks import Position, Raw
from adapters.sdk.sources import BaseSource
from adapters.ticketing.mapping import Feed, Network, network_of
from adapters.ticketing.parse import GTFS_FILES, FeedLine, feed_files, feed_lines, parse_row

log = logging.getLogger("cetate.adapter.ticketing")

LINE_STRIDE = 10_000_000  # positions per GTFS file: no feed file has ten million lines
TIMEOUT = 30.0  # seconds for one request to the back office
RETRY = 2.0  # seconds before asking an unreachable back office again


def _after(checkpoint: Mapping[str, Position], stream: str) -> int:
    done = checkpoint.get(stream)
    return done if isinstance(done, int) else 0


async def _get(client: httpx.AsyncClient, url: str, params: Mapping[str, Any]) -> httpx.Response:
    """GET until the back office answers 2xx (it may be restarting): never gives up, as a
    source that ended here would end the run with its records unread."""
    while True:
        try:
            response = await client.get(url, params=params)
            response.raise_for_status()
            return response
        except httpx.HTTPError as exc:
            log.warning("GET %s failed (%s); again in %.0f s", url, exc, RETRY)
            await asyncio.sleep(RETRY)


class GtfsFeed(BaseSource):
    """The feed's lines, in a stream named after the feed's digest ("gtfs@<sha256 prefix>"):
    a new version of the feed is a new stream, read from its first line, while a restart on
    the same version resumes after its checkpoint. With `refresh` (seconds), the feed is
    fetched again that often and a changed one published; `publish=False` reads it for its
    stops and products only."""

    def __init__(self, url: str, feed: Feed, on_network: Callable[[Network], None], *,
                 refresh: float | None = None, publish: bool = True) -> None:
        self.url, self.feed, self.on_network = url, feed, on_network
        self.refresh, self.publish = refresh, publish
        self.loaded = asyncio.Event()

    @staticmethod
    def stream_of(data: bytes, files: Mapping[str, bytes] | None = None) -> str:
        """Named after the mapped files' contents (so a feed zipped again is the same
        version), or the bytes of a zip that cannot be read."""
        digest = hashlib.sha256()
        if files is None:
            digest.update(data)
        contents = files or {}
        for name in sorted(contents):
            digest.update(f"{name}\0{len(contents[name])}\0".encode())
            digest.update(contents[name])
        return f"gtfs@{digest.hexdigest()[:16]}"

    def lines(self, data: bytes) -> list[Raw]:
        """Every line of the feed as a Raw (bad ones with their error), in position order."""
        try:
            files = feed_files(data)
        except BadRecord as bad:
            return [Raw(self.stream_of(data), 1, {"bytes": len(data)}, bad.reason)]
        stream = self.stream_of(data, files)
        out = []
        for rank, name in enumerate(GTFS_FILES, 1):
            if name not in files:
                continue
            try:
                for line, error in feed_lines(name, files[name]):
                    out.append(Raw(stream, rank * LINE_STRIDE + line.line, line.as_json(),
                                   error))
            except BadRecord as bad:
                out.append(Raw(stream, rank * LINE_STRIDE + 1, {"file": name}, bad.reason))
        return out

    def _load(self, raws: list[Raw]) -> None:
        rows = []
        for raw in raws:
            if not raw.error and "text" in raw.data:
                try:
                    rows.append(parse_row(FeedLine.from_json(raw.data)))
                except BadRecord:
                    continue
        self.on_network(network_of(rows, self.feed))
        self.loaded.set()

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        seen = ""
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            while True:
                raws = self.lines((await _get(client, self.url, {})).content)
                stream = raws[0].stream if raws else ""
                if stream != seen:
                    seen = stream
                    self._load(raws)
                    after = _after(checkpoint, stream)
                    for raw in raws if self.publish else ():
                        if int(raw.position) > after:
                            yield raw
                if self.refresh is None:
                    return
                await asyncio.sleep(self.refresh)


class TapLog(BaseSource):
    stream = "taps"

    def __init__(self, url: str, ready: asyncio.Event, *, page: int = 1000,
                 interval: float = 2.0, follow: bool = True) -> None:
        self.url, self.ready, self.page = url, ready, page
        self.interval, self.follow = interval, follow

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        after = _after(checkpoint, self.stream)
        await self.ready.wait()
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            while True:
                response = await _get(client, self.url, {"after": after, "limit": self.page})
                lines = response.content.split(b"\n")
                if lines and not lines[-1]:
                    lines.pop()
                for line in lines:
                    after += 1
                    try:
                        yield Raw(self.stream, after, line.decode("utf-8"))
                    except UnicodeDecodeError as exc:
                        yield Raw(self.stream, after, line.decode("utf-8", "backslashreplace"),
                                  f"tap line {after} is not UTF-8: {exc.reason}")
                if not lines:
                    if not self.follow:
                        return
                    await asyncio.sleep(self.interval)


class TapHours(BaseSource):
    stream = "hours"

    def __init__(self, url: str, ready: asyncio.Event, *, interval: float = 60.0,
                 follow: bool = True) -> None:
        self.url, self.ready, self.interval, self.follow = url, ready, interval, follow

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        done = checkpoint.get(self.stream)
        after = done if isinstance(done, int) else None
        await self.ready.wait()
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            while True:
                params = {} if after is None else {"after": after}
                try:
                    hours = (await _get(client, self.url, params)).json()
                except ValueError:
                    hours = None
                if not isinstance(hours, list) or not all(
                        isinstance(h, dict) and isinstance(h.get("hour"), int) for h in hours):
                    log.warning("%s answered no list of hours; again in %.0f s", self.url,
                                self.interval)
                    await asyncio.sleep(self.interval)
                    continue
                for hour in hours:
                    after = hour["hour"]
                    yield Raw(self.stream, after, hour)
                if not hours:
                    if not self.follow:
                        return
                    await asyncio.sleep(self.interval)
