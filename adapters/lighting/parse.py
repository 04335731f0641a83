"""The Luminis CMS change feed (the vendor's JSON REST API) -> typed records. Pure.

The CMS numbers every change to a cabinet, a group or a lamp controller with one increasing
`seq`; `GET /api/v1/changes?after=SEQ&limit=N` answers

    {"items": [{"seq": 17, "kind": "controller", "data": {...}}, ...], "last": 17}

adapters.sdk.sources.HttpPolling reads the pages (one that is not JSON at all, truncated or in
the wrong encoding, is dead-lettered whole); each item is parsed here on its own, so one
impossible record is refused with its reason (BadRecord) while the rest of the page goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.sdk.errors import BadRecord

# Physical bounds of a street lamp controller on a 230 V network (EN 50160: ±10 % of 230 V;
# controllers report up to 400 V on a phase fault before they trip).
MAX_VOLTAGE_V = 400.0
MAX_LAMP_POWER_W = 2000.0  # the largest high-pressure sodium lamps are 1 kW; LED < 400 W
MAX_BURNING_HOURS = 200_000  # ~ 45 years of night burning
# Craiova's administrative area, with a margin: a controller outside it is a GPS/entry error.
CITY_BOUNDS = {"lat": (44.20, 44.45), "lon": (23.65, 23.95)}

CONTROLLER_STATES = frozenset({"ON", "OFF", "DIMMED", "BOOT"})
FAULTS = frozenset({"LAMP_FAILURE", "POLE_DAMAGE", "LANTERN_BROKEN", "COMM_LOSS",
                    "OVERVOLTAGE", "LOW_POWER_FACTOR"})
CABINET_MODES = frozenset({"AUTO", "MANUAL", "SEMI"})
SCHEDULES = frozenset({"NIGHT_ON", "NIGHT_DIM", "ALWAYS_ON", "OFF"})
COMMAND_STATUSES = frozenset({"executed", "rejected", "pending"})


class BadPage(BadRecord):
    """A response that is not a change-feed page at all (truncated, not UTF-8, not JSON)."""


@dataclass(frozen=True)
class Command:
    """The last command the CMS received for a controller, and what became of it."""

    command_id: str
    command: str  # "switch" | "dim"
    value: str  # "ON"/"OFF" or a level 0-100
    status: str  # executed | rejected | pending
    reason: str
    at: str


@dataclass(frozen=True)
class Controller:
    seq: int
    controller_id: str
    lamp_id: str
    serial: str
    firmware: str
    cabinet_id: str
    group_id: str
    address: str
    pole_no: str
    lat: float
    lon: float
    lamp_type: str
    rated_power_w: float
    state: str
    dim_level: int
    power_w: float
    voltage_v: float
    current_a: float
    power_factor: float
    energy_kwh: float
    burning_hours: int
    faults: tuple[str, ...]
    last_switch_on: str | None
    last_switch_off: str | None
    installed: str
    last_lamp_change: str | None
    reported_at: str
    last_command: Command | None


@dataclass(frozen=True)
class Cabinet:
    seq: int
    cabinet_id: str
    name: str
    address: str
    lat: float
    lon: float
    serial: str
    brand: str
    model: str
    mode: str
    group_ids: tuple[str, ...]
    energy_kwh: float
    active_power_kw: float
    max_power_kw: float
    voltages_v: tuple[float, float, float]
    commissioned: str
    reported_at: str


@dataclass(frozen=True)
class Group:
    seq: int
    group_id: str
    cabinet_id: str
    name: str
    lat: float
    lon: float
    schedule: str
    dim_level: int
    state: str
    lamp_ids: tuple[str, ...]
    reported_at: str


Record = Controller | Cabinet | Group


def _get(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data:
        raise BadRecord(f"{name}: missing")
    value = data[name]
    # bool is an int in Python: a true/false where a number is due is still refused
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRecord(f"{name}: expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


def _text(data: dict[str, Any], name: str) -> str:
    value = _get(data, name, str)
    if not value.strip():
        raise BadRecord(f"{name}: empty")
    if "\ufffd" in value:  # the replacement character: bytes decoded with the wrong charset
        raise BadRecord(f"{name}: not valid UTF-8 text (wrong encoding at the source)")
    return str(value)


def _number(data: dict[str, Any], name: str, low: float, high: float) -> float:
    value = float(_get(data, name, (int, float)))
    if not low <= value <= high:
        raise BadRecord(f"{name}: {value} is impossible (expected {low}..{high})")
    return value


def _instant(data: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    if optional and data.get(name) is None:
        return None
    value = _text(data, name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRecord(f"{name}: {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise BadRecord(f"{name}: {value!r} has no UTC offset")
    return value


def _choice(data: dict[str, Any], name: str, allowed: frozenset[str]) -> str:
    value = _text(data, name)
    if value not in allowed:
        raise BadRecord(f"{name}: {value!r} is not one of {sorted(allowed)}")
    return value


def _position(data: dict[str, Any]) -> tuple[float, float]:
    return (_number(data, "lat", *CITY_BOUNDS["lat"]), _number(data, "lon", *CITY_BOUNDS["lon"]))


def _ids(data: dict[str, Any], name: str) -> tuple[str, ...]:
    values = _get(data, name, list)
    if not all(isinstance(v, str) and v for v in values):
        raise BadRecord(f"{name}: expected a list of identifiers")
    return tuple(values)


def _command(raw: Any) -> Command | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadRecord("lastCommand: expected an object")
    return Command(command_id=_text(raw, "id"), command=_choice(raw, "command",
                                                                 frozenset({"switch", "dim"})),
                   value=str(_get(raw, "value", (str, int))),
                   status=_choice(raw, "status", COMMAND_STATUSES),
                   reason=str(raw.get("reason") or ""), at=str(_instant(raw, "at")))


def parse_controller(seq: int, data: dict[str, Any]) -> Controller:
    faults = _get(data, "faults", list)
    unknown = sorted(set(map(str, faults)) - FAULTS)
    if unknown:
        raise BadRecord(f"faults: unknown codes {unknown}")
    lat, lon = _position(data)
    return Controller(
        seq=seq, controller_id=_text(data, "controllerId"), lamp_id=_text(data, "lampId"),
        serial=_text(data, "serial"), firmware=_text(data, "firmware"),
        cabinet_id=_text(data, "cabinetId"), group_id=_text(data, "groupId"),
        address=_text(data, "address"), pole_no=_text(data, "poleNo"), lat=lat, lon=lon,
        lamp_type=_text(data, "lampType"),
        rated_power_w=_number(data, "ratedPowerW", 1, MAX_LAMP_POWER_W),
        state=_choice(data, "state", CONTROLLER_STATES),
        dim_level=int(_number(data, "dimLevel", 0, 100)),
        power_w=_number(data, "powerW", 0, MAX_LAMP_POWER_W),
        voltage_v=_number(data, "voltageV", 0, MAX_VOLTAGE_V),
        current_a=_number(data, "currentA", 0, 20),
        power_factor=_number(data, "powerFactor", 0, 1),
        energy_kwh=_number(data, "energyKWh", 0, 1e7),
        burning_hours=int(_number(data, "burningHours", 0, MAX_BURNING_HOURS)),
        faults=tuple(sorted(map(str, faults))),
        last_switch_on=_instant(data, "lastSwitchOn", optional=True),
        last_switch_off=_instant(data, "lastSwitchOff", optional=True),
        installed=str(_instant(data, "installed")),
        last_lamp_change=_instant(data, "lastLampChange", optional=True),
        reported_at=str(_instant(data, "reportedAt")),
        last_command=_command(data.get("lastCommand")))


def parse_cabinet(seq: int, data: dict[str, Any]) -> Cabinet:
    lat, lon = _position(data)
    voltages = _get(data, "phaseVoltagesV", list)
    if len(voltages) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                     and 0 <= v <= MAX_VOLTAGE_V for v in voltages):
        raise BadRecord(f"phaseVoltagesV: expected three voltages 0..{MAX_VOLTAGE_V}")
    return Cabinet(
        seq=seq, cabinet_id=_text(data, "cabinetId"), name=_text(data, "name"),
        address=_text(data, "address"), lat=lat, lon=lon, serial=_text(data, "serial"),
        brand=_text(data, "brand"), model=_text(data, "model"),
        mode=_choice(data, "mode", CABINET_MODES), group_ids=_ids(data, "groupIds"),
        energy_kwh=_number(data, "energyKWh", 0, 1e9),
        active_power_kw=_number(data, "activePowerKW", 0, 1000),
        max_power_kw=_number(data, "maxPowerKW", 0, 1000),
        voltages_v=(float(voltages[0]), float(voltages[1]), float(voltages[2])),
        commissioned=str(_instant(data, "commissioned")),
        reported_at=str(_instant(data, "reportedAt")))


def parse_group(seq: int, data: dict[str, Any]) -> Group:
    lat, lon = _position(data)
    return Group(
        seq=seq, group_id=_text(data, "groupId"), cabinet_id=_text(data, "cabinetId"),
        name=_text(data, "name"), lat=lat, lon=lon,
        schedule=_choice(data, "schedule", SCHEDULES),
        dim_level=int(_number(data, "dimLevel", 0, 100)),
        state=_choice(data, "state", CONTROLLER_STATES), lamp_ids=_ids(data, "lampIds"),
        reported_at=str(_instant(data, "reportedAt")))


PARSERS: dict[str, Callable[[int, dict[str, Any]], Record]] = {
    "controller": parse_controller, "cabinet": parse_cabinet, "group": parse_group}


def parse_item(item: Any) -> Record:
    """One change-feed item -> its record; BadRecord with the reason if it cannot be."""
    if not isinstance(item, dict):
        raise BadRecord("item: expected an object")
    seq = item.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise BadRecord("seq: expected a positive integer")
    parser = PARSERS.get(str(item.get("kind")))
    if parser is None:
        raise BadRecord(f"kind: {item.get('kind')!r} is not one of {sorted(PARSERS)}")
    data = item.get("data")
    if not isinstance(data, dict):
        raise BadRecord("data: expected an object")
    return parser(seq, data)
