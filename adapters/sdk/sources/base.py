"""What every source shares, and `Merged`, which reads several as one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence

from adapters.sdk.hooks import Position, Raw, Source

# Records a merged source holds in memory ahead of the pipeline: a fast source waits for it.
MERGE_BUFFER = 1000


class BaseSource:
    """The defaults of the Source protocol: no known total, nothing to acknowledge."""

    @property
    def total(self) -> int | None:
        return None

    def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        raise NotImplementedError

    def committed(self, checkpoint: Mapping[str, Position]) -> None:
        return None


class Merged(BaseSource):
    """Several sources read at once; each keeps its own streams and positions."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)

    @property
    def total(self) -> int | None:
        totals = [s.total for s in self.sources]
        return None if None in totals else sum(t for t in totals if t is not None)

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        queue: asyncio.Queue[Raw | BaseException | None] = asyncio.Queue(MERGE_BUFFER)

        async def pump(source: Source) -> None:
            try:
                async for raw in source.read(checkpoint):
                    await queue.put(raw)
            except Exception as exc:  # handed to the reader, which re-raises it
                await queue.put(exc)
            else:
                await queue.put(None)

        tasks = [asyncio.create_task(pump(s)) for s in self.sources]
        try:
            running = len(tasks)
            while running:
                item = await queue.get()
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def committed(self, checkpoint: Mapping[str, Position]) -> None:
        for source in self.sources:
            source.committed(checkpoint)


def merged(*sources: Source) -> Merged:
    return Merged(sources)
