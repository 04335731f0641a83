"""The dispatcher against real HTTP receivers and an in-memory outbox: per-receiver isolation,
retries with backoff, permanent failures, cooldown and shutdown. Timings are kept small by
injecting the backoff parameters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from broker.ld.termmap import CORE_TERMS
from broker.subscriptions.backoff import Backoff
from broker.subscriptions.dispatcher import Dispatcher, Limits
from broker.subscriptions.http_sender import HttpSender
from broker.subscriptions.mqtt_sender import MqttSender
from broker.subscriptions.notification import (
    Outgoing,
    new_notification_id,
    notification_body,
    prepare,
)
from broker.subscriptions.outbox import PendingNotification
from broker.subscriptions.sender import Result
from broker.subscriptions.subscription import parse_subscription
from tests.broker.subscriptions.conftest import LOOPBACK, Receiver, serving_receiver
from tests.broker.subscriptions.memory_outbox import MemoryOutbox

NOW = "2026-12-01T10:00:00.000Z"
FAST = Backoff(base=0.02, factor=2, cap=0.1, jitter=0.5)
LIMITS = Limits(per_endpoint=2, queue_per_endpoint=4, batch=16, lease=30, poll_interval=0.05)


def message(uri: str, sub_id: str = "urn:ngsi-ld:Subscription:s1",
            **endpoint: Any) -> Outgoing:
    sub = parse_subscription({"type": "Subscription", "id": sub_id,
                              "entities": [{"type": "T"}],
                              "notification": {"endpoint": {"uri": uri, **endpoint}}},
                             CORE_TERMS, NOW)
    body = notification_body(sub, [{"id": "urn:ngsi-ld:T:1", "type": "T"}],
                             notification_id=new_notification_id(), notified_at=NOW)
    return prepare(sub, body)


@pytest.fixture
async def second_receiver() -> AsyncIterator[Receiver]:
    # Another receiver on its own port: another endpoint key, another lane.
    async with serving_receiver() as rec:
        yield rec


class Running:
    def __init__(self, outbox: MemoryOutbox, **kwargs: Any) -> None:
        self.sender = HttpSender(LOOPBACK, timeout=kwargs.pop("timeout", 5.0))
        self.results: list[tuple[PendingNotification, Result]] = []
        self.dispatcher = Dispatcher(outbox, {"http": self.sender}, backoff=kwargs.pop(
            "backoff", FAST), limits=kwargs.pop("limits", LIMITS),
            on_result=lambda row, result, _sent: self.results.append((row, result)), **kwargs)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.dispatcher.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.dispatcher.stop(grace=0.5)
        assert self.task is not None
        await asyncio.wait_for(self.task, 2.0)


async def test_delivers_and_counts(receiver: Receiver) -> None:
    outbox = MemoryOutbox()
    sent = [outbox.add(message(receiver.url + "/n"), due=0) for _ in range(5)]
    async with Running(outbox):
        await receiver.wait_for(5)
        await until(lambda: not outbox.rows)
    assert len(sent) == 5 and outbox.counters["urn:ngsi-ld:Subscription:s1"].times_sent == 5
    assert sorted(r.body["id"] for r in receiver.received) == sorted(outbox.delivered_ids)


async def test_wake_delivers_without_waiting_for_the_poll(receiver: Receiver) -> None:
    outbox = MemoryOutbox()
    slow_poll = Limits(poll_interval=30)
    async with Running(outbox, limits=slow_poll) as running:
        await asyncio.sleep(0.05)  # the loop is now asleep for 30 s
        outbox.add(message(receiver.url + "/n"), due=0)
        start = time.monotonic()
        running.dispatcher.wake()
        await receiver.wait_for(1, timeout=2.0)
        assert time.monotonic() - start < 1.0


async def test_hanging_receiver_does_not_delay_another(receiver: Receiver,
                                                       second_receiver: Receiver) -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    receiver.behave = hang
    outbox = MemoryOutbox()
    for _ in range(20):  # far more than the hanging lane holds (queue_per_endpoint=4)
        outbox.add(message(receiver.url + "/hang", "urn:ngsi-ld:Subscription:dead"), due=0)
    healthy = 30
    for _ in range(healthy):
        outbox.add(message(second_receiver.url + "/ok", "urn:ngsi-ld:Subscription:live"),
                   due=0)
    start = time.monotonic()
    async with Running(outbox, timeout=5.0):
        await second_receiver.wait_for(healthy, timeout=3.0)
        elapsed = time.monotonic() - start
        release.set()
    # The healthy receiver got everything while the other one still hung (5 s timeout).
    assert elapsed < 2.0
    assert outbox.counters["urn:ngsi-ld:Subscription:live"].times_sent == healthy


async def test_receiver_failing_then_recovering_gets_it(receiver: Receiver) -> None:
    failures = 3
    calls = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls <= failures:
            await request.read()
            return web.Response(status=503)
        await receiver.record(request)
        return web.Response(status=200)

    receiver.behave = flaky
    outbox = MemoryOutbox()
    out = message(receiver.url + "/n")
    outbox.add(out, due=0)
    async with Running(outbox) as running:
        await receiver.wait_for(1, timeout=3.0)
        await until(lambda: not outbox.rows)
    assert calls == failures + 1
    assert receiver.received[0].body["id"] == out.notification_id  # the same id, every try
    counters = outbox.counters[out.subscription_id]
    assert counters.times_failed == failures and counters.times_sent == 1
    attempts = [row.attempt for row, _ in running.results]
    assert attempts == [0, 1, 2, 3]


async def test_backlog_arrives_once_the_receiver_is_back(receiver: Receiver) -> None:
    up = asyncio.Event()

    async def down_then_up(request: web.Request) -> web.Response:
        if not up.is_set():
            await request.read()
            return web.Response(status=502)
        await receiver.record(request)
        return web.Response()

    receiver.behave = down_then_up
    outbox = MemoryOutbox()
    ids = {outbox.add(message(receiver.url + "/n"), due=0) for _ in range(10)}
    async with Running(outbox):
        await until(lambda: all(r.pending.attempt >= 2 for r in outbox.pending()))
        up.set()
        await receiver.wait_for(10, timeout=3.0)
        await until(lambda: not outbox.rows)
    assert len(ids) == 10 and len({r.body["id"] for r in receiver.received}) == 10


async def test_permanent_failure_is_not_retried(receiver: Receiver) -> None:
    async def gone(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=404)

    receiver.behave = gone
    outbox = MemoryOutbox()
    outbox.add(message(receiver.url + "/n"), due=0)
    async with Running(outbox) as running:
        await until(lambda: bool(outbox.failed_rows()))
        await asyncio.sleep(0.15)  # several backoff periods: no second attempt comes
    assert len(running.results) == 1
    assert outbox.failed_rows()[0].last_error == "HTTP 404"


async def test_gives_up_after_max_attempts(receiver: Receiver) -> None:
    receiver.behave = _status(500)
    outbox = MemoryOutbox()
    outbox.add(message(receiver.url + "/n"), due=0)
    backoff = Backoff(base=0.01, cap=0.02, max_attempts=3)
    async with Running(outbox, backoff=backoff) as running:
        await until(lambda: bool(outbox.failed_rows()))
    assert len(running.results) == 3
    assert outbox.counters["urn:ngsi-ld:Subscription:s1"].times_failed == 3


async def test_cooldown_holds_the_endpoint(receiver: Receiver) -> None:
    calls: list[float] = []

    async def fail_once(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            await request.read()
            return web.Response(status=500)
        await receiver.record(request)
        return web.Response()

    receiver.behave = fail_once
    outbox = MemoryOutbox()
    outbox.add(message(receiver.url + "/n", cooldown=300), due=0)
    async with Running(outbox):
        await receiver.wait_for(1, timeout=3.0)
    assert calls[1] - calls[0] >= 0.29  # the cooldown, not the 20 ms backoff


async def test_due_rows_wait_their_time(receiver: Receiver) -> None:
    outbox = MemoryOutbox()
    now = time.time()
    outbox.add(message(receiver.url + "/later"), due=now + 0.3)
    outbox.add(message(receiver.url + "/now"), due=0)
    async with Running(outbox):
        await receiver.wait_for(1)
        assert [r.path for r in receiver.received] == ["/now"]
        await receiver.wait_for(2, timeout=3.0)
    assert time.time() - now >= 0.3


async def test_unknown_scheme_fails_for_good() -> None:
    outbox = MemoryOutbox()
    outbox.add(message("mqtt://127.0.0.1:1883/t"), due=0)  # no MQTT sender configured here
    async with Running(outbox):
        await until(lambda: bool(outbox.failed_rows()))
    assert "no sender for mqtt" in outbox.failed_rows()[0].last_error


async def test_stop_gives_back_queued_rows(receiver: Receiver) -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    receiver.behave = hang
    outbox = MemoryOutbox()
    for _ in range(4):
        outbox.add(message(receiver.url + "/n"), due=0)
    running = Running(outbox)
    async with running:
        await until(lambda: sum(1 for r in outbox.rows.values() if r.lease_until) == 4)
    release.set()
    leased = [r for r in outbox.rows.values() if r.lease_until is not None]
    # Two were in flight (per_endpoint=2) and were cancelled: their lease brings them back.
    # The two that waited in the queue were given back at once.
    assert len(outbox.rows) == 4 and len(leased) == 2


def _status(code: int) -> Any:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=code)
    return answer


async def until(condition: Any, timeout: float = 3.0) -> None:
    """Poll a condition on the in-memory outbox (its changes have no event of their own)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_hung_mqtt_broker_does_not_delay_http(receiver: Receiver) -> None:
    """An MQTT broker that accepts the connection and never answers CONNACK (a half-dead
    broker) holds its own lane only."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    outbox = MemoryOutbox()
    for _ in range(10):
        outbox.add(message(f"mqtt://127.0.0.1:{port}/city/lights",
                           "urn:ngsi-ld:Subscription:mqtt"), due=0)
    for _ in range(10):
        outbox.add(message(receiver.url + "/n", "urn:ngsi-ld:Subscription:http"), due=0)
    mqtt = MqttSender(LOOPBACK, timeout=3.0)
    running = Running(outbox)
    running.dispatcher.senders["mqtt"] = mqtt
    start = time.monotonic()
    try:
        async with running:
            await receiver.wait_for(10, timeout=2.5)
            elapsed = time.monotonic() - start
    finally:
        for writer in held:
            writer.close()
        server.close()
    assert elapsed < 2.0
    assert outbox.counters["urn:ngsi-ld:Subscription:http"].times_sent == 10
