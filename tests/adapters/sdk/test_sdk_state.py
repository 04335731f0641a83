"""The pure parts of a run's state: a batch (one upsert per id), the checkpoint file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.sdk import ConfigError, Raw
from adapters.sdk.batch import Batch
from adapters.sdk.checkpoint import Checkpoint


def spot(status: str, **more: object) -> dict[str, object]:
    return {"id": "urn:ngsi-ld:ParkingSpot:1", "type": "ParkingSpot",
            "status": {"type": "Property", "value": status}, **more}


def test_one_id_twice_in_a_batch_is_one_upsert() -> None:
    replace = Batch()
    replace.add(spot("free", name={"type": "Property", "value": "A1"}), Raw("s", 1, {}))
    replace.add(spot("occupied"), Raw("s", 2, {}))
    assert replace.payload() == [spot("occupied")]  # the later state, whole
    assert replace.origin("urn:ngsi-ld:ParkingSpot:1") == Raw("s", 2, {})
    update = Batch(update=True)
    update.add(spot("free", name={"type": "Property", "value": "A1"}), Raw("s", 1, {}))
    update.add(spot("occupied"), Raw("s", 2, {}))
    assert update.payload() == [spot("occupied", name={"type": "Property", "value": "A1"})]


def test_a_batch_reaches_the_last_position_of_each_stream() -> None:
    batch = Batch()
    for raw in (Raw("a", 1, {}), Raw("b", 7, {}), Raw("a", 2, {})):
        batch.reach(raw)
    assert (batch.reached, batch.records) == ({"a": 2, "b": 7}, 3)


def test_checkpoint_round_trip_keeps_every_stream(tmp_path: Path) -> None:
    path = tmp_path / "state" / "checkpoint.json"
    first = Checkpoint(path)
    assert first.load() == {}
    first.save({"a.csv": 10})
    first.save({"b.csv": 3})
    assert Checkpoint(path).load() == {"a.csv": 10, "b.csv": 3}
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.json"]  # no temporary left


def test_an_unreadable_checkpoint_stops_the_run_instead_of_starting_over(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        Checkpoint(path).load()
    path.write_text(json.dumps({"version": 99, "positions": {}}))
    with pytest.raises(ConfigError, match="not a version 1"):
        Checkpoint(path).load()
