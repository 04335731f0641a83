"""The ticketing vendor's native formats -> records. Pure: bytes in, dataclasses out.

Two formats:
- a GTFS static feed (https://gtfs.org/schedule/reference/): a zip of CSV files, UTF-8 (a BOM
  is allowed), one header line. Each data line is its own raw record, so one bad line costs
  that line only: `feed_lines` splits the zip, `parse_row` reads one line.
- validator tap logs: JSON lines, one tap each, as the back office serves them. Times are
  either RFC 3339 with an offset or, as validators in the field often send them, local time
  without one, which is Romanian time (Europe/Bucharest).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from adapters.sdk.errors import BadRecord

LOCAL_TIME = ZoneInfo("Europe/Bucharest")
# The files of a feed we map, in dependency order: a trip names its route, a route its agency.
GTFS_FILES = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "fare_products.txt")
MAX_FEED_FILE = 64 * 1024 * 1024  # bytes of one unzipped file; a zip bomb is refused above it
UTF8_BOM = b"\xef\xbb\xbf"
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class FeedLine:
    """One data line of a GTFS file, decoded: `line` counts from 1 (the header)."""

    file: str
    line: int
    header: tuple[str, ...]
    text: str

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "header": list(self.header),
                "text": self.text}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FeedLine:
        return cls(str(doc["file"]), int(doc["line"]), tuple(doc["header"]), str(doc["text"]))


@dataclass(frozen=True)
class GtfsRow:
    file: str
    line: int
    fields: Mapping[str, str]  # column -> value; empty values are left out (GTFS: absent)


@dataclass(frozen=True)
class Tap:
    """One validator tap as the back office logged it."""

    txn: str  # the validator's transaction id, unique in the back office
    card_uid: str  # MIFARE UID or bank-card PAN token: a direct identifier, never published
    media: str
    card_status: str
    validator: str
    vehicle: str
    stop_id: str
    route_id: str | None
    trip_id: str | None
    direction: int | None
    at: datetime  # aware
    product: str | None
    result: str
    reason: str | None
    amount: Decimal | None
    riders: int


def feed_files(data: bytes) -> dict[str, bytes]:
    """The files of a GTFS zip we map (name -> bytes); BadRecord if the zip is unreadable."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        out: dict[str, bytes] = {}
        for info in archive.infolist():
            name = info.filename.rsplit("/", 1)[-1]
            if name in GTFS_FILES:
                if info.file_size > MAX_FEED_FILE:
                    raise BadRecord(f"{name}: {info.file_size} bytes unzipped, over the "
                                        f"{MAX_FEED_FILE} limit")
                out[name] = archive.read(info)
        return out
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as error:
        raise BadRecord(f"GTFS feed is not a readable zip (truncated?): {error}") from None


def _physical_lines(content: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each CSV record; a quoted field may hold a newline (RFC 4180)."""
    start, number, quoted = 0, 1, False
    for index, byte in enumerate(content):
        if byte == 0x22:  # '"'
            quoted = not quoted
        elif byte == 0x0A and not quoted:
            yield number, content[start:index].rstrip(b"\r")
            number += content.count(b"\n", start, index) + 1
            start = index + 1
    if start < len(content):
        yield number, content[start:].rstrip(b"\r")


def _decoded(data: bytes, where: str) -> tuple[str, str]:
    """(text, error): error is "" for UTF-8; else the text shows bad bytes as \\xNN."""
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as error:
        return (data.decode("utf-8", "backslashreplace"),
                f"{where}: not UTF-8 (GTFS requires UTF-8): byte {data[error.start]:#04x} "
                f"at {error.start}")


def _fields(text: str) -> list[str]:
    rows = list(csv.reader([text], strict=True)) if text else [[]]
    return rows[0] if rows else []


def feed_lines(name: str, content: bytes) -> Iterator[tuple[FeedLine, str]]:
    """(line, error) for each data line of one GTFS file; error is "" when it decodes.
    BadRecord if the header cannot be read: none of the file's lines can be then."""
    if content.startswith(UTF8_BOM):
        content = content[len(UTF8_BOM):]
    lines = _physical_lines(content)
    first = next(lines, None)
    if first is None:
        raise BadRecord(f"{name}: empty file, no header")
    text, error = _decoded(first[1], f"{name} line 1")
    if error:
        raise BadRecord(error)
    try:
        header = tuple(h.strip() for h in _fields(text))
    except csv.Error as exc:
        raise BadRecord(f"{name} line 1: malformed CSV header ({exc})") from None
    for number, data in lines:
        if data.strip():
            text, error = _decoded(data, f"{name} line {number}")
            yield FeedLine(name, number, header, text), error


def parse_row(raw: FeedLine) -> GtfsRow:
    """One GTFS data line -> its fields; BadRecord if it is malformed or cut short."""
    where = f"{raw.file} line {raw.line}"
    try:
        values = _fields(raw.text)
    except csv.Error as error:
        raise BadRecord(f"{where}: malformed CSV ({error})") from None
    if len(values) != len(raw.header):
        raise BadRecord(f"{where}: {len(values)} fields, the header has "
                        f"{len(raw.header)} (truncated line?)")
    fields = {k: v.strip() for k, v in zip(raw.header, values, strict=True) if v.strip()}
    return GtfsRow(raw.file, raw.line, fields)


# -- taps ----------------------------------------------------------------------------------------

TAP_REQUIRED = ("txn", "card_uid", "validator", "vehicle", "stop_id", "ts", "result")


def parse_time(value: Any, what: str = "ts") -> datetime:
    """RFC 3339, or local Romanian time when the offset is missing."""
    if not isinstance(value, str):
        raise BadRecord(f"{what}: not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRecord(f"{what}: {value!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=LOCAL_TIME)


def _text(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise BadRecord(f"{key}: expected a string, got {type(value).__name__}")
    return str(value)


def _amount(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise BadRecord("amount: not a number") from None
    if not amount.is_finite() or amount < 0:
        raise BadRecord("amount: negative or not finite")
    if amount != amount.quantize(CENTS):
        raise BadRecord("amount: more than 2 decimals (lei and bani)")
    return amount.quantize(CENTS)


def parse_tap(line: bytes | str) -> Tap:
    """One JSON line of the tap log -> a Tap; BadRecord with the reason otherwise."""
    try:
        doc = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRecord(f"tap: not JSON ({error.__class__.__name__}: {error})") from None
    if not isinstance(doc, dict):
        raise BadRecord("tap: not a JSON object")
    missing = [k for k in TAP_REQUIRED if _text(doc, k) is None]
    if missing:
        raise BadRecord(f"tap: missing {', '.join(missing)}")
    direction = doc.get("direction")
    if direction not in (None, 0, 1):
        raise BadRecord("direction: not 0 or 1 (GTFS direction_id)")
    riders = doc.get("riders", 1)
    if not isinstance(riders, int) or isinstance(riders, bool) or riders < 1:
        raise BadRecord("riders: not a positive integer")
    return Tap(
        txn=str(doc["txn"]), card_uid=str(doc["card_uid"]), media=_text(doc, "media") or "card",
        card_status=_text(doc, "card_status") or "ACTIVE", validator=str(doc["validator"]),
        vehicle=str(doc["vehicle"]), stop_id=str(doc["stop_id"]),
        route_id=_text(doc, "route_id"), trip_id=_text(doc, "trip_id"), direction=direction,
        at=parse_time(doc["ts"]), product=_text(doc, "product"), result=str(doc["result"]),
        reason=_text(doc, "reason"), amount=_amount(doc.get("amount")), riders=riders)
