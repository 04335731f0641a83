"""`cetate adapter` as outside checks run it: `run NAME --simulate --broker URL --limit N` exits
0 with the entities published; no key outside --simulate, or an unknown adapter, exits 2."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from adapters.sdk.example import SDM_TRANSPORTATION
from tests.adapters.sdk.readings import write_readings
from tests.adapters.support import BrokerProcess, entities, run_cli, spawn_cli


@pytest.fixture
def broker(shared_broker: BrokerProcess) -> BrokerProcess:
    return shared_broker


def test_run_simulate_limit_exits_zero(broker: BrokerProcess, tenant: str) -> None:
    done = run_cli("run", "example", "--simulate", "--broker", broker.url, "--limit", "150",
                   "--tenant", tenant)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["read"] == 150 and summary["rejected"] == 0
    assert len(entities(broker.url, "Vehicle", SDM_TRANSPORTATION, tenant=tenant)) == 12


def test_run_with_a_config_file_imports_with_progress(broker: BrokerProcess, tmp_path: Path,
                                                      adapter_state: Path, tenant: str) -> None:
    write_readings(tmp_path / "r.jsonl", 40)
    config = tmp_path / "readings.toml"
    config.write_text(f'broker = "{broker.url}"\npath = "{tmp_path / "r.jsonl"}"\n'
                      f'state_dir = "{adapter_state}"\ntenant = "{tenant}"\n')
    done = run_cli("run", "tests.adapters.sdk.readings:ADAPTER", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "40/40" in done.stderr  # tqdm's bar on a bulk import
    assert len(entities(broker.url, "Vehicle", SDM_TRANSPORTATION, tenant=tenant)) == 40


def test_no_key_outside_simulate_is_refused(broker: BrokerProcess, tmp_path: Path,
                                            tenant: str) -> None:
    write_readings(tmp_path / "r.jsonl", 3)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"path": str(tmp_path / "r.jsonl")}))
    done = run_cli("run", "tests.adapters.sdk.readings:ADAPTER", "--config", str(config),
                   "--broker", broker.url, "--state", str(tmp_path / "s"), "--tenant", tenant,
                   CETATE_ADAPTER_SECRET="")
    assert done.returncode == 2
    assert "no pseudonymisation key" in done.stderr
    assert entities(broker.url, "Vehicle", SDM_TRANSPORTATION, tenant=tenant) == []


def test_unknown_adapter_is_a_config_error() -> None:
    done = run_cli("run", "bakery", "--simulate", "--broker", "http://127.0.0.1:9")
    assert done.returncode == 2 and "no adapter named 'bakery'" in done.stderr


def test_simulate_serves_until_terminated() -> None:
    simulator = spawn_cli("simulate", "example", "--seed", "3")
    try:
        assert simulator.stdout is not None
        served = json.loads(simulator.stdout.readline())
        page = httpx.get(served["url"], params={"after": 10}, timeout=10).json()
        assert page["positions"][0]["seq"] == 11
        simulator.send_signal(signal.SIGTERM)
        assert simulator.wait(timeout=20) == 0
    finally:
        if simulator.poll() is None:
            simulator.kill()


def test_a_missing_adapter_setting_is_a_config_error(tmp_path: Path) -> None:
    done = run_cli("run", "example", "--broker", "http://127.0.0.1:9", "--state",
                   str(tmp_path / "s"))
    assert done.returncode == 2 and "has no 'url'" in done.stderr
