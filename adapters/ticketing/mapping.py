"""Ticketing records -> NGSI-LD normalized entities of the contract types. Pure.

GTFS rows become GtfsAgency, GtfsStop, GtfsRoute, GtfsTrip and FareProduct (GTFS Fares v2);
a tap becomes a TransitCard (its state) and a TicketValidation. The card UID only ever leaves
here as a keyed hash (`pseudonymise`, the SDK's HMAC): the TransitCard id and `cardIdHash`
are built from it, and a rider category (art. 9 data when `disabled`) is never copied onto a
card or a validation: the fare product already says whom it is for.

Every entity carries its type's @context (the batch goes out as application/ld+json: the GTFS
types speak the Smart Data Models UrbanMobility context, the ticketing ones Cetate's). The SDK
checks each against its contract before publishing (adapters/sdk/validate.py), a record whole:
a tap whose validation would be refused takes its TransitCard to the dead-letter file with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from adapters.sdk.errors import BadRecord
from adapters.sdk.hooks import Entity, Pseudonymise
from adapters.ticketing.parse import GtfsRow, Tap
from broker.validation import contracts
from models.domain import to_normalized

CARD_KIND = "card"  # the pseudonymiser's domain for card UIDs and PAN tokens
CURRENCY = "RON"

# GTFS Fares v2 fare_media_type (fare_media.txt) -> the contract's fareMediaType.
FARE_MEDIA_TYPES = {"0": "none", "1": "paperTicket", "2": "transitCard",
                    "3": "contactlessBankCard", "4": "mobileApp"}
# What the validators log as the medium tapped.
TAP_MEDIA = {"card": "transitCard", "bank": "contactlessBankCard", "qr": "mobileApp",
             "paper": "paperTicket"}
# GTFS rider_category_id values the operator uses -> the contract's riderCategory.
RIDER_CATEGORIES = {"adult": "adult", "copil": "child", "elev": "pupil", "student": "student",
                    "pensionar": "senior", "dizabilitati": "disabled", "veteran": "veteran",
                    "insotitor": "companion"}
CARD_STATUSES = {"ACTIVE": "active", "BLOCKED": "blocked", "EXPIRED": "expired",
                 "LOST": "lost", "STOLEN": "stolen", "REPLACED": "replaced"}
RESULTS = {"OK": "accepted", "REJ": "rejected"}
REJECTION_REASONS = {"NO_PRODUCT": "noValidProduct", "LOW_BALANCE": "insufficientBalance",
                     "BLOCKED": "cardBlocked", "EXPIRED": "cardExpired",
                     "PASSBACK": "alreadyValidated", "READ_ERROR": "readError"}
PRODUCT_KINDS = frozenset({"singleRide", "multiRide", "timePass", "dayPass", "monthPass",
                           "seasonPass", "storedValue"})


def urn(type_name: str, feed: str, local: str) -> str:
    """urn:ngsi-ld:<Type>:<feed>:<id>, the GTFS id percent-encoded (GTFS ids are free text)."""
    return f"urn:ngsi-ld:{type_name}:{feed}:{quote(local, safe='-._~')}"


def entity(type_name: str, key_values: Mapping[str, Any]) -> Entity:
    """The normalized entity (None values left out) with its type's @context."""
    contract = contracts().named(type_name)
    doc = {"type": type_name, **{k: v for k, v in key_values.items() if v is not None}}
    return {**to_normalized(doc, contract), "@context": [contract.context]}


def _int(row: GtfsRow, column: str) -> int | None:
    value = row.fields.get(column)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRecord(f"{row.file} line {row.line}: {column} {value!r} is not an "
                            f"integer") from None


def _coordinate(row: GtfsRow, column: str, low: float, high: float) -> float:
    value = row.fields.get(column)
    try:
        number = float(value) if value is not None else None
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise BadRecord(f"{row.file} line {row.line}: {column} {value!r} is not a "
                            f"coordinate in [{low}, {high}]")
    return number


def _required(row: GtfsRow, *columns: str) -> None:
    missing = [c for c in columns if c not in row.fields]
    if missing:
        raise BadRecord(f"{row.file} line {row.line}: missing {', '.join(missing)}")


# -- GTFS rows -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Feed:
    """The feed id (in every entity id) and the agency the feed's rows default to."""

    id: str = "rat-craiova"
    default_agency: str = "RATC"


def map_agency(row: GtfsRow, feed: Feed) -> Entity:
    _required(row, "agency_name", "agency_url", "agency_timezone")
    f = row.fields
    return entity("GtfsAgency", {
        "id": urn("GtfsAgency", feed.id, f.get("agency_id", feed.default_agency)),
        "agencyName": f["agency_name"], "source": f["agency_url"], "page": f["agency_url"],
        "timezone": f["agency_timezone"], "language": f.get("agency_lang"),
        "phone": f.get("agency_phone")})


def map_stop(row: GtfsRow, feed: Feed) -> Entity:
    _required(row, "stop_id", "stop_name")
    f = row.fields
    lat = _coordinate(row, "stop_lat", -90, 90)
    lon = _coordinate(row, "stop_lon", -180, 180)
    parent = f.get("parent_station")
    return entity("GtfsStop", {
        "id": urn("GtfsStop", feed.id, f["stop_id"]), "name": f["stop_name"],
        "location": {"type": "Point", "coordinates": [lon, lat]},
        "code": f.get("stop_code"), "stop_desc": f.get("stop_desc"),
        "zoneCode": f.get("zone_id"), "page": f.get("stop_url"),
        "wheelChairAccessible": f.get("wheelchair_boarding"),
        "hasParentStation": urn("GtfsStop", feed.id, parent) if parent else None,
        "operatedBy": [urn("GtfsAgency", feed.id, feed.default_agency)]})


def map_route(row: GtfsRow, feed: Feed) -> Entity:
    _required(row, "route_id", "route_type")
    f = row.fields
    if "route_short_name" not in f and "route_long_name" not in f:
        raise BadRecord(f"{row.file} line {row.line}: neither route_short_name nor "
                            f"route_long_name")
    return entity("GtfsRoute", {
        "id": urn("GtfsRoute", feed.id, f["route_id"]), "shortName": f.get("route_short_name"),
        "name": f.get("route_long_name"), "description": f.get("route_desc"),
        "routeType": f["route_type"], "page": f.get("route_url"),
        "routeColor": f.get("route_color"), "routeTextColor": f.get("route_text_color"),
        "routeSortOrder": _int(row, "route_sort_order"),
        "operatedBy": urn("GtfsAgency", feed.id, f.get("agency_id", feed.default_agency))})


def map_trip(row: GtfsRow, feed: Feed) -> Entity:
    _required(row, "route_id", "service_id", "trip_id")
    f = row.fields
    shape = f.get("shape_id")
    return entity("GtfsTrip", {
        "id": urn("GtfsTrip", feed.id, f["trip_id"]),
        "hasRoute": urn("GtfsRoute", feed.id, f["route_id"]),
        "hasService": urn("GtfsService", feed.id, f["service_id"]),
        "headSign": f.get("trip_headsign"), "shortName": f.get("trip_short_name"),
        "direction": _int(row, "direction_id"), "block": f.get("block_id"),
        "hasShape": urn("GtfsShape", feed.id, shape) if shape else None,
        "wheelChairAccessible": _int(row, "wheelchair_accessible"),
        "bikesAllowed": _int(row, "bikes_allowed")})


def _money(row: GtfsRow, column: str) -> float:
    value = row.fields.get(column, "")
    try:
        amount = Decimal(value)
    except ArithmeticError:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise BadRecord(f"{row.file} line {row.line}: {column} {value!r} is not an amount "
                        f"(lei, at most 2 decimals)")
    return float(amount)


def map_fare_product(row: GtfsRow, feed: Feed) -> Entity:
    """fare_products.txt (GTFS Fares v2). `fare_media_type` is fare_media.txt's column, which
    the operator's export joins in; `product_kind` and `validity` are its own extension columns
    (GTFS consumers ignore extra columns)."""
    _required(row, "fare_product_id", "amount", "currency")
    f = row.fields
    media = FARE_MEDIA_TYPES.get(f.get("fare_media_type", ""))
    rider = RIDER_CATEGORIES.get(f.get("rider_category_id", ""))
    kind = f.get("product_kind")
    if kind is not None and kind not in PRODUCT_KINDS:
        raise BadRecord(f"{row.file} line {row.line}: product_kind {kind!r} unknown")
    return entity("FareProduct", {
        "id": urn("FareProduct", feed.id, f["fare_product_id"]),
        "fareProductId": f["fare_product_id"], "name": f.get("fare_product_name"),
        "amount": _money(row, "amount"), "priceCurrency": f["currency"],
        "fareMediaType": [media] if media else None, "riderCategory": [rider] if rider else None,
        "productKind": kind, "validityDuration": f.get("validity"),
        "operatedBy": urn("GtfsAgency", feed.id, feed.default_agency)})


ROW_MAPPERS: dict[str, Callable[[GtfsRow, Feed], Entity]] = {
    "agency.txt": map_agency, "stops.txt": map_stop, "routes.txt": map_route,
    "trips.txt": map_trip, "fare_products.txt": map_fare_product}


def map_row(row: GtfsRow, feed: Feed) -> Entity:
    return ROW_MAPPERS[row.file](row, feed)


# -- taps ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Network:
    """What a tap is checked against: the stops and fare products of the GTFS feed."""

    feed: Feed = field(default_factory=Feed)
    stops: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # id -> (lon, lat)
    products: frozenset[str] = frozenset()


def network_of(rows: Iterable[GtfsRow], feed: Feed | None = None) -> Network:
    """The Network of a feed's readable stops.txt and fare_products.txt rows."""
    stops: dict[str, tuple[float, float]] = {}
    products: set[str] = set()
    for row in rows:
        try:
            if row.file == "stops.txt" and "stop_id" in row.fields:
                stops[row.fields["stop_id"]] = (_coordinate(row, "stop_lon", -180, 180),
                                                _coordinate(row, "stop_lat", -90, 90))
            elif row.file == "fare_products.txt" and "fare_product_id" in row.fields:
                products.add(row.fields["fare_product_id"])
        except BadRecord:
            continue  # the row's own record is the dead letter; taps at it are unknown stops
    return Network(feed or Feed(), stops, frozenset(products))


def card_id(card_uid: str, pseudonymise: Pseudonymise) -> str:
    """The TransitCard id: from the keyed hash of the UID, never from the UID."""
    return f"urn:ngsi-ld:TransitCard:{pseudonymise(CARD_KIND, card_uid.upper())}"


def map_tap(tap: Tap, network: Network, pseudonymise: Pseudonymise) -> list[Entity]:
    """A tap -> [TransitCard, TicketValidation]; BadRecord for an unknown stop or product,
    or a code the back office is not known to send."""
    feed = network.feed
    if tap.stop_id not in network.stops:
        raise BadRecord(f"tap {tap.txn}: unknown stop {tap.stop_id!r} (not in the GTFS "
                            f"feed's stops.txt)")
    if tap.product is not None and tap.product not in network.products:
        raise BadRecord(f"tap {tap.txn}: unknown fare product {tap.product!r}")
    media = TAP_MEDIA.get(tap.media)
    status = CARD_STATUSES.get(tap.card_status)
    result = RESULTS.get(tap.result)
    if media is None or status is None or result is None:
        raise BadRecord(f"tap {tap.txn}: unknown media, card_status or result code")
    reason = None
    if result == "rejected":
        reason = REJECTION_REASONS.get(tap.reason or "", "other")
    card = card_id(tap.card_uid, pseudonymise)
    product = urn("FareProduct", feed.id, tap.product) if tap.product else None
    transit_card = entity("TransitCard", {
        "id": card, "cardIdHash": card.rsplit(":", 1)[1], "fareMediaType": media,
        "cardStatus": status, "operatedBy": urn("GtfsAgency", feed.id, feed.default_agency)})
    validation = entity("TicketValidation", {
        "id": urn("TicketValidation", feed.id, tap.txn),
        "dateValidated": tap.at.isoformat(), "validationResult": result,
        "rejectionReason": reason, "transactionType": "checkIn", "refTransitCard": card,
        "refFareProduct": product,
        "amountCharged": float(tap.amount) if tap.amount is not None else None,
        "priceCurrency": CURRENCY if tap.amount is not None else None,
        "passengerCount": tap.riders,
        "refDevice": f"urn:ngsi-ld:Device:{feed.id}:validator-{quote(tap.validator, safe='-._~')}",
        "refVehicle": f"urn:ngsi-ld:Vehicle:{feed.id}:{quote(tap.vehicle, safe='-._~')}",
        "hasStop": urn("GtfsStop", feed.id, tap.stop_id),
        "hasRoute": urn("GtfsRoute", feed.id, tap.route_id) if tap.route_id else None,
        "hasTrip": urn("GtfsTrip", feed.id, tap.trip_id) if tap.trip_id else None,
        "direction": tap.direction})
    return [transit_card, validation]
