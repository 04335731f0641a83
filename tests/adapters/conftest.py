"""Fixtures of the adapter tests (tests/adapters/*): a real broker process, the test key.

    def test_x(broker: BrokerProcess, adapter_state: Path) -> None:
        run_cli("run", "parking", "--simulate", "--broker", broker.url, "--limit", "200",
                "--state", str(adapter_state))

    def test_y(shared_broker: BrokerProcess, tenant: str) -> None:  # faster: one per module
        run_cli("run", "parking", "--simulate", "--broker", shared_broker.url, "--tenant",
                tenant, "--limit", "200")
        entities(shared_broker.url, "ParkingSpot", PARKING_CONTEXT, tenant=tenant)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.support import TEST_SECRET, BrokerProcess


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A running `cetate serve` (SQLite in tmp_path; loopback receivers allowed)."""
    process = BrokerProcess(tmp_path / "cetate.db").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One running broker for a whole test module (starting one costs seconds): give each
    test its own `tenant` so that tests never see each other's entities."""
    process = BrokerProcess(tmp_path_factory.mktemp("broker") / "cetate.db").start()
    yield process
    process.stop()


@pytest.fixture
def tenant() -> str:
    """A tenant name of this test's own (NGSILD-Tenant), for use with `shared_broker`."""
    return f"test{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stopped_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker with its port chosen but not started: `.start()` it when the test wants."""
    process = BrokerProcess(tmp_path / "cetate.db")
    yield process
    process.stop()


@pytest.fixture
def adapter_state(tmp_path: Path) -> Path:
    """The adapter's state directory (checkpoint.json, dead-letters.jsonl, status.json)."""
    state = tmp_path / "adapter-state"
    state.mkdir()
    return state


@pytest.fixture
def adapter_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """The pseudonymisation key, in the environment of in-process runs."""
    monkeypatch.setenv("CETATE_ADAPTER_SECRET", TEST_SECRET)
    return TEST_SECRET
