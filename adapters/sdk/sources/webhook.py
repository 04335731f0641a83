"""A webhook receiver (aiohttp): the vendor POSTs records (a JSON object, or an array of them).

The POST is answered 200 only once its records are published or dead-lettered and the
checkpoint says so: a vendor that retries unanswered webhooks loses nothing when the adapter
dies. A POST not settled within `ack_timeout` is answered 503, so the vendor sends it again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from adapters.sdk.hooks import Position, Raw
from adapters.sdk.sources.base import BaseSource

MAX_BODY = 10 * 1024 * 1024  # bytes of one webhook POST
ACK_TIMEOUT = 30.0  # seconds a POST waits for its records to be published


class Webhook(BaseSource):
    """Listens on host:port (port 0: any; `url` once `ready` is set), `path`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, path: str = "/",
                 stream: str = "webhook", ack_timeout: float = ACK_TIMEOUT) -> None:
        self.host, self.port, self.path, self.stream = host, port, path, stream
        self.ack_timeout = ack_timeout
        self.url = ""
        self.ready = asyncio.Event()
        self._queue: asyncio.Queue[Raw] = asyncio.Queue()
        self._pending: list[tuple[int, asyncio.Future[None]]] = []
        self._counter = 0

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if len(body) > MAX_BODY:
            return web.Response(status=413)
        raws: list[Raw] = []
        try:
            decoded = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raws.append(self._next(body.decode("utf-8", "replace")[:10_000],
                                   f"webhook body is not UTF-8 JSON: {exc}"))
        else:
            items = decoded if isinstance(decoded, list) else [decoded]
            raws.extend(self._next(item) for item in items)
        if not raws:
            return web.Response(status=200)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((int(raws[-1].position), done))
        for raw in raws:
            self._queue.put_nowait(raw)
        try:
            await asyncio.wait_for(asyncio.shield(done), self.ack_timeout)
        except TimeoutError:
            return web.Response(status=503, headers={"Retry-After": "5"})
        return web.Response(status=200)

    def _next(self, data: object, error: str = "") -> Raw:
        self._counter += 1
        return Raw(self.stream, self._counter, data, error)

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        # Positions go on from the checkpoint, so one from a past run never acknowledges a
        # POST of this one.
        last = checkpoint.get(self.stream)
        self._counter = last if isinstance(last, int) else 0
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(self.path, self._receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://{self.host}:{port}{self.path}"
        self.ready.set()
        try:
            while True:
                yield await self._queue.get()
        finally:
            for _, done in self._pending:
                if not done.done():
                    done.cancel()
            await runner.cleanup()

    def committed(self, checkpoint: Mapping[str, Position]) -> None:
        position = checkpoint.get(self.stream)
        if not isinstance(position, int):
            return
        waiting = []
        for last, done in self._pending:
            if last <= position:
                if not done.done():
                    done.set_result(None)
            else:
                waiting.append((last, done))
        self._pending = waiting
