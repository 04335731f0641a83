"""Parking records -> NGSI-LD normalized entities: ParkingSpot, OnStreetParking,
OffStreetParking (Smart Data Models Parking) and ParkingSession (Cetate). Pure.

Plates and phone numbers leave only as keyed pseudonyms (`plateHash`, `msisdnHash`), made by
the pseudonymiser the adapter is given (HMAC-SHA256 under the city's key); the clear
`vehiclePlateIdentifier` is never published.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from adapters.parking.parse import CarPark, SensorEvent, SmsSession, Zone
from adapters.sdk.errors import BadRecord
from adapters.sdk.hooks import Pseudonymise
from broker.validation import contracts
from models.domain import to_normalized

CITY = "Craiova"
PREFIX = "craiova"
ALMOST_FULL = 0.9  # occupancy from which a car park shows `almostFull` (DATEX II)
Occupancy = tuple[int, int, str]  # free spaces, occupied spaces, time of the latest event

# Attributes a sensor or a barrier counts: they carry observedAt (NGSI-LD clause 4.8); the
# rest describe the site and carry none.
OBSERVED = frozenset({"status", "availableSpotNumber", "occupiedSpotNumber", "occupancy"})


class UnknownReference(BadRecord):
    """A record naming a zone the city does not have (dead-lettered)."""


def spot_id(space: str) -> str:
    return f"urn:ngsi-ld:ParkingSpot:{PREFIX}-{space}"


def zone_id(zone: str) -> str:
    return f"urn:ngsi-ld:OnStreetParking:{PREFIX}-zona-{zone}"


def car_park_id(car_park: str) -> str:
    return f"urn:ngsi-ld:OffStreetParking:{PREFIX}-{car_park}"


def session_id(session: str) -> str:
    return f"urn:ngsi-ld:ParkingSession:{PREFIX}-sms-{session}"


def _point(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}


def _address(street: str) -> dict[str, str]:
    return {"streetAddress": street, "addressLocality": CITY, "addressRegion": "Dolj",
            "addressCountry": "RO"}


def _normalized(kv: dict[str, Any], observed_at: str | None) -> dict[str, Any]:
    contract = contracts().named(kv["type"])
    entity = to_normalized({k: v for k, v in kv.items() if v is not None}, contract, observed_at)
    for name, attribute in entity.items():
        if name not in OBSERVED and isinstance(attribute, dict):
            attribute.pop("observedAt", None)
    return entity


def _known(zone: str, zones: Set[str] | None) -> None:
    if zones is not None and zone not in zones:
        raise UnknownReference(f"zone: {zone!r} is not a parking zone of the city")


def parking_spot(event: SensorEvent, zones: Set[str] | None = None) -> dict[str, Any]:
    _known(event.zone, zones)
    return _normalized({
        "id": spot_id(event.space), "type": "ParkingSpot", "status": event.status,
        "category": ["onStreet"], "refParkingSite": zone_id(event.zone),
        "location": _point(event.lat, event.lon), "address": _address(event.street),
        "name": f"Loc {event.space}, {event.street}", "timeInstant": event.at,
    }, event.at)


def zone_occupancy(zone: Zone, spots: Mapping[str, SensorEvent]) -> Occupancy | None:
    """(free, occupied, as of) of a zone from its spaces' latest events; None until every
    space of the zone has reported (a partial count would mislead a driver)."""
    events = [spots.get(space) for space in zone.space_ids]
    if not events or any(e is None for e in events):
        return None
    known = [e for e in events if e is not None]
    return (sum(e.status == "free" for e in known), sum(e.status == "occupied" for e in known),
            max(e.at for e in known))


def on_street_parking(zone: Zone, occupancy: Occupancy | None = None) -> dict[str, Any]:
    free, occupied, at = occupancy if occupancy else (None, None, None)
    return _normalized({
        "id": zone_id(zone.zone), "type": "OnStreetParking",
        "name": f"Zona {zone.zone}, {zone.name}", "location": _point(zone.lat, zone.lon),
        "address": _address(zone.street), "category": ["feeCharged", "public", "shortTerm"],
        "chargeType": ["temporaryPrice"], "allowedVehicleType": ["car"],
        "occupancyDetectionType": ["singleSpaceDetection"], "totalSpotNumber": zone.spaces,
        "maximumParkingDuration": f"PT{zone.max_minutes}M", "parkingSiteId": zone.zone,
        "refParkingSpot": [spot_id(s) for s in zone.space_ids] or None,
        "availableSpotNumber": free, "occupiedSpotNumber": occupied, "occupancyModified": at,
    }, None)


def _status(park: CarPark, occupancy: float) -> list[str]:
    """DATEX II site status: an open car park also says how full it is."""
    if park.status == "closed":
        return ["closed"]
    if park.status == "full" or park.free == 0:
        return ["full"]
    return ["open", "almostFull" if occupancy >= ALMOST_FULL else "spacesAvailable"]


def off_street_parking(park: CarPark) -> dict[str, Any]:
    occupied = park.capacity - park.free
    occupancy = occupied / park.capacity
    return _normalized({
        "id": car_park_id(park.car_park), "type": "OffStreetParking", "name": park.name,
        "location": _point(park.lat, park.lon), "address": _address(park.address),
        "category": ["barrierAccess", "feeCharged", "public", "parkingLot"],
        "allowedVehicleType": ["car"], "chargeType": ["temporaryPrice"],
        "occupancyDetectionType": ["balancing"], "totalSpotNumber": park.capacity,
        "availableSpotNumber": park.free, "occupiedSpotNumber": occupied,
        "occupancy": round(occupancy, 4), "status": _status(park, occupancy),
        "priceRatePerMinute": float(round(park.tariff_ron_per_hour / 60, 4)),
        "priceCurrency": "RON", "occupancyModified": park.updated,
        "observationDateTime": park.updated, "parkingSiteId": park.car_park,
    }, park.updated)


def parking_session(session: SmsSession, pseudonymise: Pseudonymise,
                    zones: Set[str] | None = None) -> dict[str, Any]:
    _known(session.zone, zones)
    start = datetime.strptime(session.start, "%Y-%m-%dT%H:%M:%SZ")
    end = (start + timedelta(minutes=session.minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _normalized({
        "id": session_id(session.session), "type": "ParkingSession",
        "refParkingSite": zone_id(session.zone), "startDate": session.start, "endDate": end,
        "paidDuration": f"PT{session.minutes}M",
        "amountCollected": float(session.amount_ron.quantize(Decimal("0.01"))),
        "priceCurrency": "RON", "paymentChannel": "sms", "status": session.status,
        "plateHash": pseudonymise("plate", session.plate),
        "msisdnHash": pseudonymise("msisdn", session.msisdn),
    }, None)


def context_of(entity: dict[str, Any]) -> str:
    """The @context URL an entity is published with."""
    return contracts().named(entity["type"]).context
