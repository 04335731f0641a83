"""Which CMS command a Streetlight change on the broker asks for, and how its outcome is
recorded. Pure.

City IT dims or switches a lamp by changing the Streetlight entity (PATCH of `powerState` or
`illuminanceLevel`); the adapter's subscription hands the whole entity over, and the command
is what turns the lamp the CMS reports into the lamp the entity describes:

- `powerState` differs from the lamp's: "off" switches it off, "on" switches it on at full
  power, "low" dims it to `illuminanceLevel` (LOW_LEVEL when that says nothing usable);
- else an `illuminanceLevel` that differs from the lamp's dim level dims it;
- else the entity says what the lamp already does (the adapter's own publication): nothing.

The outcome is the Streetlight's `annotations` (the only free-text attribute its contract
has): "command dim:40 executed (CMD-000003, 2026-12-01T15:05:00Z)", or "... rejected (...):
controller unreachable (COMM_LOSS)". The CMS reports the same line with the controller, so the
next poll publishes it again and, after a refusal, the state the lamp really has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.lighting.mapping import POWER_STATE, command_note
from adapters.lighting.parse import Command
from adapters.sdk.errors import BadRecord

LOW_LEVEL = 50  # % of a lamp set "low" with no usable illuminanceLevel (EN 13201 dimming step)


def _value(entity: Mapping[str, Any], name: str) -> Any:
    attribute = entity.get(name)
    return attribute.get("value") if isinstance(attribute, dict) else attribute


def command_for(entity: Mapping[str, Any], controller: Mapping[str, Any]
                ) -> dict[str, Any] | None:
    """The CMS command body that makes `controller` (the CMS's JSON) what `entity` (a
    normalized Streetlight) describes; None when it already is. BadRecord if the entity asks
    for something no command does."""
    power = _value(entity, "powerState")
    level = _value(entity, "illuminanceLevel")
    if power not in (None, "on", "off", "low"):
        raise BadRecord(f"powerState {power!r} cannot be commanded (on, off or low)")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int | float)
                              or not 0 <= level <= 1):
        raise BadRecord(f"illuminanceLevel {level!r} is not a level between 0 and 1")
    percent = round(level * 100) if level is not None else None
    current = POWER_STATE.get(str(controller.get("state")))
    if power is not None and power != current:
        if power == "off":
            return {"command": "switch", "value": "OFF"}
        if power == "on":
            return {"command": "switch", "value": "ON"}
        return {"command": "dim", "value": percent if percent and percent < 100 else LOW_LEVEL}
    if percent is not None and power != "off" and current != "off" \
            and percent != controller.get("dimLevel"):
        return {"command": "dim", "value": percent}
    return None


def outcome(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The CMS's answer to a command, as the attributes merged into the Streetlight."""
    command = Command(command_id=str(answer.get("id", "?")),
                      command=str(answer.get("command", "?")), value=str(answer.get("value")),
                      status=str(answer.get("status", "rejected")),
                      reason=str(answer.get("reason") or answer.get("error") or ""),
                      at=str(answer.get("at", "")))
    return {"annotations": {"type": "Property", "value": [command_note(command)]}}
