"""Luminis CMS records -> NGSI-LD normalized entities (Smart Data Models Streetlighting and
Device). Pure.

A lamp controller is two entities: the Streetlight (the lamp on its pole) and the Device (the
controller fitted to it, which the CMS talks to). Vendor values the models have no attribute
for go where the models say such values go: burning hours and the lamp type in the Device's
`configuration` (parameter/value pairs). The outcome of the last command city IT sent through
the broker (adapters/lighting/writeback.py) is the Streetlight's `annotations`, as the CMS
reports it with the controller, so every poll keeps it true.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from adapters.lighting.parse import Cabinet, Command, Controller, Group, Record
from adapters.sdk.errors import BadRecord
from broker.validation import contracts
from models.domain import to_normalized

CITY = "Craiova"
PREFIX = "craiova"  # the city's namespace inside entity ids: urn:ngsi-ld:<Type>:craiova-...
DATA_PROVIDER = "Luminis CMS, Primăria Municipiului Craiova"

# A fault the CMS reports -> the Streetlight status it means, worst first (one status only).
FAULT_STATUS: tuple[tuple[str, str], ...] = (
    ("POLE_DAMAGE", "columnIssue"),
    ("LANTERN_BROKEN", "brokenLantern"),
    ("LAMP_FAILURE", "defectiveLamp"),
)
# The controller's own state -> the Streetlight powerState (SDM enum: on, off, low, bootingUp).
POWER_STATE = {"ON": "on", "OFF": "off", "DIMMED": "low", "BOOT": "bootingUp"}
CABINET_MODE = {"AUTO": "automatic", "MANUAL": "manual", "SEMI": "semiautomatic"}
# Group schedule -> SDM switchingMode (a list: one program per group here).
SWITCHING_MODE = {"NIGHT_ON": "night-ON", "NIGHT_DIM": "night-LOW", "ALWAYS_ON": "always-ON",
                  "OFF": "night-OFF"}

# Attributes the CMS measures or observes: they carry observedAt (NGSI-LD clause 4.8); the rest
# (names, addresses, references, dates) describe the asset and carry none.
OBSERVED = frozenset({"status", "powerState", "illuminanceLevel", "powerConsumption", "voltage",
                      "current", "powerFactor", "lifetimePowerConsumption", "deviceState",
                      "configuration", "energyConsumed", "totalActivePower", "voltageR",
                      "voltageS", "voltageT"})


class UnknownReference(BadRecord):
    """A record naming a cabinet or group the CMS never described (dead-lettered)."""


def streetlight_id(lamp_id: str) -> str:
    return f"urn:ngsi-ld:Streetlight:{PREFIX}-{lamp_id}"


def device_id(controller_id: str) -> str:
    return f"urn:ngsi-ld:Device:{PREFIX}-{controller_id}"


def cabinet_id(cabinet: str) -> str:
    return f"urn:ngsi-ld:StreetlightControlCabinet:{PREFIX}-{cabinet}"


def group_id(group: str) -> str:
    return f"urn:ngsi-ld:StreetlightGroup:{PREFIX}-{group}"


def lamp_of(entity_id: str) -> str:
    """The CMS lamp id inside a Streetlight entity id (the inverse of `streetlight_id`)."""
    prefix = f"urn:ngsi-ld:Streetlight:{PREFIX}-"
    if not entity_id.startswith(prefix):
        raise ValueError(f"{entity_id} is not a Craiova CMS streetlight")
    return entity_id[len(prefix):]


def _point(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}  # RFC 7946: lon, lat


def _address(street: str) -> dict[str, str]:
    return {"streetAddress": street, "addressLocality": CITY, "addressRegion": "Dolj",
            "addressCountry": "RO"}


def _normalized(kv: dict[str, Any], observed_at: str) -> dict[str, Any]:
    contract = contracts().named(kv["type"])
    entity = to_normalized({k: v for k, v in kv.items() if v is not None}, contract, observed_at)
    for name, attribute in entity.items():
        if name not in OBSERVED and isinstance(attribute, dict):
            attribute.pop("observedAt", None)
    return entity


def _status(faults: tuple[str, ...]) -> str:
    return next((status for fault, status in FAULT_STATUS if fault in faults), "ok")


def streetlight(c: Controller) -> dict[str, Any]:
    return _normalized({
        "id": streetlight_id(c.lamp_id), "type": "Streetlight",
        "name": f"Stâlp {c.pole_no}, {c.address}", "location": _point(c.lat, c.lon),
        "address": _address(c.address), "status": _status(c.faults),
        "powerState": POWER_STATE[c.state],
        "illuminanceLevel": round(c.dim_level / 100, 2) if c.state != "OFF" else 0.0,
        "powerConsumption": c.power_w, "powerRating": c.rated_power_w, "voltage": c.voltage_v,
        "current": c.current_a, "powerFactor": c.power_factor,
        "lifetimePowerConsumption": c.energy_kwh, "streetPoleNum": c.pole_no,
        "controllingMethod": "individual", "locationCategory": "road",
        "refStreetlightGroup": group_id(c.group_id),
        "refStreetlightControlCabinet": cabinet_id(c.cabinet_id),
        "refDevice": [device_id(c.controller_id)],
        "dateLastSwitchingOn": c.last_switch_on, "dateLastSwitchingOff": c.last_switch_off,
        "dateLastLampChange": c.last_lamp_change, "dateServiceStarted": c.installed,
        "observationDateTime": c.reported_at, "dataProvider": DATA_PROVIDER,
        "annotations": [command_note(c.last_command)] if c.last_command else None,
    }, c.reported_at)


def command_note(cmd: Command) -> str:
    """How the CMS answered the last command, as the Streetlight's annotation says it:
    "command dim:40 executed (CMD-000003, 2026-12-01T15:05:00Z)", plus the reason if refused."""
    note = f"command {cmd.command}:{cmd.value} {cmd.status} ({cmd.command_id}, {cmd.at})"
    return f"{note}: {cmd.reason}" if cmd.reason else note


def _configuration(c: Controller) -> list[dict[str, str]]:
    items = [{"parameter": "burningHours", "value": str(c.burning_hours)},
             {"parameter": "lampType", "value": c.lamp_type},
             {"parameter": "dimLevel", "value": str(c.dim_level)}]
    return items


def device(c: Controller) -> dict[str, Any]:
    state = "commLoss" if "COMM_LOSS" in c.faults else ("fault" if c.faults else "ok")
    return _normalized({
        "id": device_id(c.controller_id), "type": "Device",
        "name": f"Controler {c.controller_id}", "deviceCategory": ["actuator", "meter"],
        "controlledProperty": ["light", "energy", "power"], "supportedProtocol": ["nb-iot"],
        "controlledAsset": [streetlight_id(c.lamp_id)], "serialNumber": c.serial,
        "firmwareVersion": c.firmware, "location": _point(c.lat, c.lon), "deviceState": state,
        "configuration": _configuration(c), "dateInstalled": c.installed,
        "dateLastValueReported": c.reported_at, "dataProvider": DATA_PROVIDER,
    }, c.reported_at)


def cabinet(c: Cabinet) -> dict[str, Any]:
    r, s, t = c.voltages_v
    return _normalized({
        "id": cabinet_id(c.cabinet_id), "type": "StreetlightControlCabinet", "name": c.name,
        "location": _point(c.lat, c.lon), "address": _address(c.address),
        "serialNumber": c.serial, "brandName": c.brand, "modelName": c.model,
        "workingMode": CABINET_MODE[c.mode], "features": ["astronomicalClock",
                                                          "individualControl"],
        "refStreetlightGroup": [group_id(g) for g in c.group_ids],
        "energyConsumed": c.energy_kwh, "totalActivePower": c.active_power_kw,
        "maximumPowerAvailable": c.max_power_kw, "voltageR": r, "voltageS": s, "voltageT": t,
        "dateServiceStarted": c.commissioned, "dataProvider": DATA_PROVIDER,
    }, c.reported_at)


def group(g: Group) -> dict[str, Any]:
    return _normalized({
        "id": group_id(g.group_id), "type": "StreetlightGroup", "name": g.name,
        "location": _point(g.lat, g.lon), "powerState": POWER_STATE[g.state],
        "illuminanceLevel": round(g.dim_level / 100, 2) if g.state != "OFF" else 0.0,
        "switchingMode": [SWITCHING_MODE[g.schedule]],
        "refStreetlightControlCabinet": cabinet_id(g.cabinet_id),
        "refStreetlight": [streetlight_id(lamp) for lamp in g.lamp_ids],
        "circuitId": g.group_id, "dataProvider": DATA_PROVIDER,
    }, g.reported_at)


def entities(record: Record, known_groups: Set[str] | None = None,
             known_cabinets: Set[str] | None = None) -> list[dict[str, Any]]:
    """The entities one record becomes. With the sets of groups and cabinets the CMS has
    described, a record naming another is refused (UnknownReference)."""
    if isinstance(record, Controller):
        _known("groupId", record.group_id, known_groups)
        _known("cabinetId", record.cabinet_id, known_cabinets)
        return [streetlight(record), device(record)]
    if isinstance(record, Group):
        _known("cabinetId", record.cabinet_id, known_cabinets)
        return [group(record)]
    return [cabinet(record)]


def _known(field: str, value: str, known: Set[str] | None) -> None:
    if known is not None and value not in known:
        raise UnknownReference(f"{field}: {value!r} is not a cabinet/group the CMS describes")


def context_of(entity: dict[str, Any]) -> str:
    """The @context URL an entity is published with (its type's Smart Data Models subject)."""
    return contracts().named(entity["type"]).context
