"""HTTP polling against a real (aiohttp) vendor API: a vendor error is polled again, an answer
that is not JSON becomes a dead letter, the cursor asks for what follows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from adapters.sdk.sources import HttpPolling


@pytest.fixture
async def vendor() -> AsyncIterator[tuple[str, list[str]]]:
    asked: list[str] = []
    answers = iter([web.Response(status=503), web.Response(text="<html>maintenance"),
                    web.json_response({"items": [{"seq": 1}, {"seq": 2}]}),
                    web.json_response({"items": [{"seq": 2}, {"seq": 3}]})])

    async def api(request: web.Request) -> web.StreamResponse:
        asked.append(request.query.get("after", "-"))
        return next(answers, web.json_response({"items": []}))

    app = web.Application()
    app.router.add_get("/api", api)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/api", asked
    await runner.cleanup()


async def test_errors_cursor_and_repeats(vendor: tuple[str, list[str]]) -> None:
    url, asked = vendor
    source = HttpPolling(url, stream="feed", items="items", cursor_param="after",
                         position_field="seq", interval=0, polls=5)
    raws = [raw async for raw in source.read({})]
    assert "not JSON" in raws[0].error and raws[0].position == 0
    assert [(r.position, r.data) for r in raws[1:]] == [(1, {"seq": 1}), (2, {"seq": 2}),
                                                        (3, {"seq": 3})]  # seq 2 once
    assert asked == ["-", "-", "-", "2", "3"]


async def test_a_restart_asks_after_the_checkpoint(vendor: tuple[str, list[str]]) -> None:
    url, asked = vendor
    source = HttpPolling(url, stream="feed", items="items", cursor_param="after",
                         position_field="seq", interval=0, polls=1)
    assert [raw async for raw in source.read({"feed": 41})] == []  # the 503: polled again later
    assert asked == ["41"]


async def test_an_unreadable_page_keeps_the_cursor_position(
        vendor: tuple[str, list[str]]) -> None:
    url, _ = vendor
    source = HttpPolling(url, stream="feed", items="items", cursor_param="after",
                         position_field="seq", interval=0, polls=2)
    raws = [raw async for raw in source.read({"feed": 41})]
    # The page after the 503 is HTML: dead-lettered at the cursor, never at position 1 (a
    # checkpoint there would replay the whole feed after a restart).
    assert [(r.position, bool(r.error)) for r in raws] == [(41, True)]
