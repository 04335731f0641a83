"""Crash safety and retries, with real processes: an adapter SIGKILLed mid-stream and restarted
leaves the broker holding every record once; a broker down at the start, then up, gets
everything after retries."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from adapters.sdk.example import SDM_TRANSPORTATION
from adapters.sdk.run import Options, run
from tests.adapters.sdk.readings import Readings, entity_id, write_readings
from tests.adapters.support import BrokerProcess, checkpoint, entities, run_cli, spawn_cli

RECORDS = 1500
KILL_AFTER = 300  # records checkpointed before the SIGKILL


def wait_for_checkpoint(state: Path, stream: str, at_least: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reached = int(checkpoint(state).get(stream, 0))
        except (ValueError, OSError):  # never half a file: rename is atomic; absent at first
            reached = 0
        if reached >= at_least:
            return reached
        time.sleep(0.02)
    raise AssertionError(f"checkpoint never reached {at_least}")


def test_sigkill_mid_stream_then_restart_loses_and_doubles_nothing(
        broker: BrokerProcess, tmp_path: Path, adapter_state: Path) -> None:
    path = tmp_path / "readings.jsonl"
    write_readings(path, RECORDS)
    args = ("run", "tests.adapters.sdk.readings:ADAPTER", "--broker", broker.url,
            "--state", str(adapter_state), "--batch-size", "25", "--no-progress")
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"path": str(path)}))
    first = spawn_cli(*args, "--config", str(config))
    try:
        wait_for_checkpoint(adapter_state, "readings.jsonl", KILL_AFTER)
        first.kill()  # SIGKILL: no cleanup, perhaps mid-batch
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = int(checkpoint(adapter_state)["readings.jsonl"])
    assert KILL_AFTER <= at_kill < RECORDS, "the kill came too late to be mid-stream"
    second = run_cli(*args, "--config", str(config))
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout.splitlines()[-1])
    assert summary["read"] == RECORDS - at_kill  # resumed right after the checkpoint
    held = entities(broker.url, "Vehicle", SDM_TRANSPORTATION)
    assert len(held) == RECORDS
    assert {e["id"] for e in held} == {entity_id(n) for n in range(1, RECORDS + 1)}
    assert all(e["mileageFromOdometer"]["value"] == int(e["id"][-6:]) * 10 for e in held)


async def test_broker_down_then_up_is_retried(stopped_broker: BrokerProcess, tmp_path: Path,
                                              adapter_state: Path, adapter_secret: str) -> None:
    path = tmp_path / "readings.jsonl"
    write_readings(path, 30)
    options = Options(broker=stopped_broker.url, state_dir=adapter_state, batch_size=10)
    running = asyncio.create_task(run(Readings(), {"path": str(path)}, options))
    while options.counters.retried < 2:  # connection refused, backing off
        await asyncio.sleep(0.05)
    assert not running.done()
    await asyncio.to_thread(stopped_broker.start)
    counters = await asyncio.wait_for(running, 60)
    assert counters.published == 30 and counters.retried >= 2
    held = {e["id"] for e in entities(stopped_broker.url, "Vehicle", SDM_TRANSPORTATION)}
    assert held == {entity_id(n) for n in range(1, 31)}


def test_sigterm_publishes_what_it_holds_checkpoints_and_exits_zero(
        broker: BrokerProcess, tmp_path: Path, adapter_state: Path) -> None:
    path = tmp_path / "readings.jsonl"
    write_readings(path, RECORDS)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"path": str(path)}))
    running = spawn_cli("run", "tests.adapters.sdk.readings:ADAPTER", "--config", str(config),
                        "--broker", broker.url, "--state", str(adapter_state),
                        "--batch-size", "25", "--no-progress")
    try:
        wait_for_checkpoint(adapter_state, "readings.jsonl", 100)
        running.terminate()
        out, err = running.communicate(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 0, err.decode()
    summary = json.loads(out.decode().splitlines()[-1])
    reached = int(checkpoint(adapter_state)["readings.jsonl"])
    assert summary["read"] == summary["published"] == reached < RECORDS
    assert len(entities(broker.url, "Vehicle", SDM_TRANSPORTATION)) == reached
