"""The three native feeds of Craiova's parking systems -> typed records. Pure.

- Space sensors (magnetometers in the asphalt, LoRaWAN, forwarded by the vendor's network server
  to MQTT): topic `craiova/parking/<zone>/<sensor>`, a JSON event per change,
  `{"sensor", "space", "zone", "event": "OCCUPIED"|"FREE"|"FAULT", "ts", "street", "lat",
  "lon", "battery", "seq"}`.
- Barrier car parks (the operator's HTTP API): `{"updated", "carparks": [{"id", "name",
  "address", "lat", "lon", "capacity", "free", "status": "OPEN"|"FULL"|"CLOSED",
  "tariffRonPerHour", "updated"}]}`; and the on-street zone catalogue `{"zones": [...]}`.
- Pay-by-SMS sessions (the SMS gateway's export, one CSV file per quarter hour, UTF-8,
  `;`-separated, Romanian decimal commas, local time Europe/Bucharest):
  `id;msisdn;plate;zone;street;start;duration_min;amount_ron;status`.

Each record parses on its own: an impossible one is refused (BadRecord, with the reason) and
the others go on. Plates and phone numbers stay in the record only until mapping pseudonymises
them; no reason (adapters.sdk.BadRecord) quotes them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from adapters.sdk.errors import BadRecord

LOCAL_TIME = ZoneInfo("Europe/Bucharest")
CITY_BOUNDS = {"lat": (44.20, 44.45), "lon": (23.65, 23.95)}  # Craiova, with a margin
MAX_SESSION_MINUTES = 24 * 60  # the gateway sells at most a day ticket
MAX_SESSION_RON = Decimal("500")
MAX_CAR_PARK_SPACES = 10_000
SENSOR_EVENTS = {"OCCUPIED": "occupied", "FREE": "free", "FAULT": "unknown"}
CAR_PARK_STATES = {"OPEN": "open", "FULL": "full", "CLOSED": "closed"}
# The gateway's Romanian status codes -> ParkingSession.status.
SESSION_STATES = {"ACTIV": "active", "INCHEIAT": "completed", "ANULAT": "cancelled",
                  "EXPIRAT": "expired"}
SMS_COLUMNS = ("id", "msisdn", "plate", "zone", "street", "start", "duration_min", "amount_ron",
               "status")
# A Romanian plate (county code + 2-3 digits + 3 letters; B + 2-3 digits; temporary/official
# forms too) once spaces and hyphens are gone; foreign plates: 2-10 letters and digits.
PLATE = re.compile(r"^[A-Z0-9]{2,10}$")
# A Romanian mobile number: 07xxxxxxxx, +407xxxxxxxx, 00407xxxxxxxx, 407xxxxxxxx.
MSISDN = re.compile(r"^(?:\+?40|0040|0)(7\d{8})$")


class BadFile(BadRecord):
    """An HTTP answer that is not the vendor's document at all (truncated, not UTF-8)."""


@dataclass(frozen=True)
class SensorEvent:
    sensor: str
    space: str
    zone: str
    status: str  # ParkingSpot.status
    at: str  # UTC, RFC 3339
    street: str
    lat: float
    lon: float
    battery_v: float
    seq: int


@dataclass(frozen=True)
class CarPark:
    car_park: str
    name: str
    address: str
    lat: float
    lon: float
    capacity: int
    free: int
    status: str  # OffStreetParking.status
    tariff_ron_per_hour: Decimal
    updated: str


@dataclass(frozen=True)
class Zone:
    zone: str
    name: str
    street: str
    lat: float
    lon: float
    spaces: int
    tariff_ron_per_hour: Decimal
    max_minutes: int
    space_ids: tuple[str, ...]


@dataclass(frozen=True)
class SmsSession:
    session: str
    msisdn: str  # E.164, in clear until mapping pseudonymises it
    plate: str  # normalised, in clear until mapping pseudonymises it
    zone: str
    start: str  # UTC
    minutes: int
    amount_ron: Decimal
    status: str  # ParkingSession.status
    line: int  # in the export file (for the checkpoint and dead letters)


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data or data[name] is None:
        raise BadRecord(f"{name}: missing")
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRecord(f"{name}: wrong type {type(value).__name__}")
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = str(_field(data, name, str)).strip()
    if not value:
        raise BadRecord(f"{name}: empty")
    if "\ufffd" in value:
        raise BadRecord(f"{name}: not valid UTF-8 text (wrong encoding at the source)")
    return value


def _number(data: dict[str, Any], name: str, low: float, high: float) -> float:
    value = float(_field(data, name, (int, float)))
    if not low <= value <= high:
        raise BadRecord(f"{name}: {value} is impossible (expected {low}..{high})")
    return value


def _position(data: dict[str, Any]) -> tuple[float, float]:
    return _number(data, "lat", *CITY_BOUNDS["lat"]), _number(data, "lon", *CITY_BOUNDS["lon"])


def _utc(value: str, name: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRecord(f"{name}: {value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise BadRecord(f"{name}: {value!r} has no UTC offset")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _choice(data: dict[str, Any], name: str, table: dict[str, str]) -> str:
    value = _text(data, name)
    if value not in table:
        raise BadRecord(f"{name}: {value!r} is not one of {sorted(table)}")
    return table[value]


def _money(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text.strip().replace(",", "."))  # "3,50" is 3.50 lei
    except InvalidOperation:
        raise BadRecord(f"{name}: {text!r} is not an amount") from None
    if not value.is_finite() or not Decimal(0) <= value <= MAX_SESSION_RON:
        raise BadRecord(f"{name}: {value} RON is impossible (expected 0..{MAX_SESSION_RON})")
    return value


# -- space sensors (MQTT) --------------------------------------------------------------------

def parse_sensor_event(payload: bytes) -> SensorEvent:
    try:
        data = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRecord("payload: not UTF-8 (wrong encoding)") from None
    except json.JSONDecodeError as exc:
        raise BadRecord(f"payload: not JSON ({exc.msg}): truncated?") from None
    if not isinstance(data, dict):
        raise BadRecord("payload: expected a JSON object")
    lat, lon = _position(data)
    seq = _field(data, "seq", int)
    return SensorEvent(sensor=_text(data, "sensor"), space=_text(data, "space"),
                       zone=_text(data, "zone"), status=_choice(data, "event", SENSOR_EVENTS),
                       at=_utc(_text(data, "ts"), "ts"), street=_text(data, "street"),
                       lat=lat, lon=lon, battery_v=_number(data, "battery", 0, 4.2), seq=seq)


# -- car parks and zones (HTTP) --------------------------------------------------------------

def parse_car_park(data: Any) -> CarPark:
    if not isinstance(data, dict):
        raise BadRecord("carpark: expected an object")
    lat, lon = _position(data)
    capacity = int(_number(data, "capacity", 1, MAX_CAR_PARK_SPACES))
    free = int(_number(data, "free", 0, MAX_CAR_PARK_SPACES))
    if free > capacity:
        raise BadRecord(f"free: {free} spaces free of a capacity of {capacity} is impossible")
    tariff = Decimal(str(_number(data, "tariffRonPerHour", 0, 100)))
    return CarPark(car_park=_text(data, "id"), name=_text(data, "name"),
                   address=_text(data, "address"), lat=lat, lon=lon, capacity=capacity,
                   free=free, status=_choice(data, "status", CAR_PARK_STATES),
                   tariff_ron_per_hour=tariff, updated=_utc(_text(data, "updated"), "updated"))


def parse_zone(data: Any) -> Zone:
    if not isinstance(data, dict):
        raise BadRecord("zone: expected an object")
    lat, lon = _position(data)
    return Zone(zone=_text(data, "zone"), name=_text(data, "name"), street=_text(data, "street"),
                lat=lat, lon=lon, spaces=int(_number(data, "spaces", 1, 10_000)),
                tariff_ron_per_hour=Decimal(str(_number(data, "tariffRonPerHour", 0, 100))),
                max_minutes=int(_number(data, "maxMinutes", 1, MAX_SESSION_MINUTES)),
                space_ids=_ids(data, "spaceIds"))


def _ids(data: dict[str, Any], name: str) -> tuple[str, ...]:
    values = data.get(name, [])
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise BadRecord(f"{name}: expected a list of identifiers")
    return tuple(values)


def json_list(body: bytes, key: str) -> list[Any]:
    """The list under `key` of an HTTP answer; BadFile if the answer is not such a document."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadFile(f"answer is not UTF-8 JSON ({type(exc).__name__}): truncated?") from None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise BadFile(f"answer has no {key!r} list")
    return list(doc[key])


# -- pay-by-SMS export (CSV files) -----------------------------------------------------------

def normalise_plate(raw: str) -> str:
    """The plate as enforcement writes it: capitals, no spaces or hyphens ("DJ 12 ABC" ->
    "DJ12ABC"), so that one car always gives one pseudonym."""
    plate = re.sub(r"[\s\-.]", "", raw).upper()
    if not PLATE.match(plate):
        raise BadRecord("plate: not a registration plate")
    return plate


def normalise_msisdn(raw: str) -> str:
    """A Romanian mobile number in E.164 (+407xxxxxxxx), however the gateway wrote it."""
    match = MSISDN.match(re.sub(r"[\s\-.()]", "", raw))
    if not match:
        raise BadRecord("msisdn: not a Romanian mobile number")
    return f"+40{match.group(1)}"


def _local_start(text: str) -> str:
    try:
        moment = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise BadRecord(f"start: {text.strip()!r} is not 'YYYY-MM-DD HH:MM:SS'") from None
    return moment.replace(tzinfo=LOCAL_TIME).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


MASK = "<masked>"  # what a dead letter shows of a plate or a phone number


def mask_identifiers(row: Any) -> Any:
    """The export row (a {column: text} dict, or the list of a short row) with its phone
    number and plate masked, in place: a dead letter keeps the row's stream and position (the
    export file still has it), never the identifiers in clear."""
    if isinstance(row, dict):
        for column in ("msisdn", "plate"):
            if column in row:
                row[column] = MASK
    elif isinstance(row, list):
        for index in (SMS_COLUMNS.index("msisdn"), SMS_COLUMNS.index("plate")):
            if index < len(row):
                row[index] = MASK
    return row


def parse_sms_row(data: Any, line: int) -> SmsSession:
    """One row of the export, as {column: text} (adapters.sdk.sources.Files reads the CSV)."""
    if not isinstance(data, dict) or set(data) != set(SMS_COLUMNS):
        raise BadRecord(f"row {line}: the columns are not {';'.join(SMS_COLUMNS)}")
    row = {k: str(v) for k, v in data.items()}
    if any("\ufffd" in value for value in row.values()):
        raise BadRecord(f"row {line}: not valid UTF-8 text (wrong encoding at the source)")
    try:
        minutes = int(row["duration_min"])
    except ValueError:
        raise BadRecord(f"row {line}: duration_min: not a number of minutes") from None
    if not 1 <= minutes <= MAX_SESSION_MINUTES:
        raise BadRecord(f"row {line}: duration_min: {minutes} is impossible "
                        f"(expected 1..{MAX_SESSION_MINUTES})")
    status = row["status"].strip()
    if status not in SESSION_STATES:
        raise BadRecord(f"row {line}: status: {status!r} is not one of {sorted(SESSION_STATES)}")
    session = row["id"].strip()
    if not re.match(r"^[A-Za-z0-9\-_]{1,64}$", session):
        raise BadRecord(f"row {line}: id: not a session identifier")
    try:
        return SmsSession(session=session, msisdn=normalise_msisdn(row["msisdn"]),
                          plate=normalise_plate(row["plate"]), zone=row["zone"].strip(),
                          start=_local_start(row["start"]), minutes=minutes,
                          amount_ron=_money(row["amount_ron"], "amount_ron"),
                          status=SESSION_STATES[status], line=line)
    except BadRecord as exc:
        raise BadRecord(f"row {line}: {exc.reason}") from None
