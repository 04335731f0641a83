"""Which CMS command a Streetlight change asks for, pure: only a real difference from the lamp
makes one; what cannot be commanded is refused with a reason; the outcome reads as the CMS
answered."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.lighting.writeback import LOW_LEVEL, command_for, outcome
from adapters.sdk.errors import BadRecord


def light(power: str | None = None, level: Any = None) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": "urn:ngsi-ld:Streetlight:craiova-L-000001",
                              "type": "Streetlight"}
    if power is not None:
        entity["powerState"] = {"type": "Property", "value": power}
    if level is not None:
        entity["illuminanceLevel"] = {"type": "Property", "value": level}
    return entity


ON = {"state": "ON", "dimLevel": 100}
DIMMED = {"state": "DIMMED", "dimLevel": 70}
OFF = {"state": "OFF", "dimLevel": 70}


@pytest.mark.parametrize(("entity", "lamp", "command"), [
    (light("on", 1.0), ON, None),  # the adapter's own publication: nothing to do
    (light("low", 0.7), DIMMED, None),
    (light("off", 0.0), OFF, None),
    (light("on", 0.3), ON, {"command": "dim", "value": 30}),  # city IT dims
    (light("off", 1.0), ON, {"command": "switch", "value": "OFF"}),
    (light("on", 0.0), OFF, {"command": "switch", "value": "ON"}),
    (light("on", 0.7), DIMMED, {"command": "switch", "value": "ON"}),  # full power again
    (light("low", 1.0), ON, {"command": "dim", "value": LOW_LEVEL}),
    (light("low", 0.25), ON, {"command": "dim", "value": 25}),
    (light("low", 0.0), OFF, {"command": "dim", "value": LOW_LEVEL}),
    (light(level=0.55), DIMMED, {"command": "dim", "value": 55}),
    (light("off", 0.4), OFF, None),  # a level set on a lamp kept off changes nothing
])
def test_the_command_a_change_asks_for(entity: dict[str, Any], lamp: dict[str, Any],
                                       command: dict[str, Any] | None) -> None:
    assert command_for(entity, lamp) == command


@pytest.mark.parametrize(("entity", "reason"), [
    (light("bootingUp", 1.0), "powerState 'bootingUp' cannot be commanded"),
    (light("on", 1.5), "illuminanceLevel 1.5 is not a level between 0 and 1"),
    (light("on", "full"), "illuminanceLevel 'full' is not a level"),
    (light("on", True), "illuminanceLevel True is not a level")])
def test_what_no_command_does_is_refused(entity: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadRecord) as refused:
        command_for(entity, ON)
    assert reason in refused.value.reason


def test_the_outcome_reads_as_the_cms_answered() -> None:
    executed = outcome({"id": "CMD-000007", "command": "dim", "value": 30, "status": "executed",
                        "reason": "", "at": "2026-12-01T15:05:00Z"})
    assert executed == {"annotations": {"type": "Property", "value": [
        "command dim:30 executed (CMD-000007, 2026-12-01T15:05:00Z)"]}}
    refused = outcome({"command": "switch", "value": "OFF", "error": "no controller LC-9"})
    [note] = refused["annotations"]["value"]
    assert note.startswith("command switch:OFF rejected") and note.endswith("no controller LC-9")
