"""Fixtures of the adapter tests (tests/adapters/*): a real broker process, the test key.

    def test_x(broker: BrokerProcess, adapter_state: Path) -> None:
        run_cli("run", "parking", "--simulate", "--broker", broker.url, "--limit", "200",
                "--state", str(adapter_state))
"""

from __future__ import annotations

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
