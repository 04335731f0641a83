"""Typed models of the city's entity types (contracts/types/), for adapters.

Each model holds the keyValues form with Python types and the contract's enums; `normalized()`
emits the NGSI-LD normalized form with the attribute kinds the contract declares, and
`problems()` checks the entity against the contract's JSON Schema, as the broker will. Attributes
a model does not type are still accepted when the contract lists them:

    spot = ParkingSpot(id="urn:ngsi-ld:ParkingSpot:craiova-unirii-12", status="free",
                       category=["onStreet"], refParkingSite="urn:ngsi-ld:OnStreetParking:unirii",
                       location=Point(coordinates=(23.7967, 44.3190)))
    httpx.post(url, json=spot.normalized(), headers={"Link": spot.link()})
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from broker.validation.check import Failure, check_key_values
from broker.validation.contracts import TypeContract, contracts
from models.attributes import Uri

CONTEXT_LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
KeyedHash = Field(pattern=r"^([0-9a-f]{64}|[A-Za-z0-9_-]{43})$")
Currency = Field(default=None, pattern=r"^[A-Z]{3}$")
Amount = Field(default=None, ge=0)


class Point(BaseModel):
    """A GeoJSON Point (RFC 7946 §3.1.2): longitude, latitude."""

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float]


class DomainEntity(BaseModel):
    """Base of every domain model; `contract_name` names its contracts/types/ file."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    contract_name: ClassVar[str]

    id: Uri

    @classmethod
    def contract(cls) -> TypeContract:
        return contracts().named(cls.contract_name)

    @classmethod
    def link(cls) -> str:
        """The Link header naming the type's @context, for application/json requests."""
        return CONTEXT_LINK.format(cls.contract().context)

    @model_validator(mode="after")
    def _listed(self) -> DomainEntity:
        contract = self.contract()
        if not contract.additional_attributes:
            unknown = sorted(set(self.model_extra or {}) - set(contract.attributes))
            if unknown:
                raise ValueError(f"not attributes of {contract.name}: {', '.join(unknown)}")
        return self

    def key_values(self) -> dict[str, Any]:
        """The keyValues form (what the contract's schema describes)."""
        return {**self.model_dump(mode="json", exclude_none=True, by_alias=True),
                "type": self.contract_name}

    def normalized(self, observed_at: str | None = None) -> dict[str, Any]:
        """The normalized form, each attribute of the kind its contract declares."""
        return to_normalized(self.key_values(), self.contract(), observed_at)

    def problems(self) -> list[Failure]:
        """How the entity breaks its contract ([] if it does not)."""
        return check_key_values(self.key_values(), self.contract())


def to_normalized(key_values: dict[str, Any], contract: TypeContract,
                  observed_at: str | None = None) -> dict[str, Any]:
    """keyValues -> normalized, with the kinds of `contract` (Property when it lists none)."""
    out: dict[str, Any] = {"id": key_values["id"], "type": key_values.get("type", contract.name)}
    for name, value in key_values.items():
        if name in ("id", "type", "@context"):
            continue
        listed = contract.attributes.get(name)
        kind = listed.kind if listed and listed.kind else "Property"
        if name == "location":
            kind = "GeoProperty"
        member = {"Relationship": "object", "ListRelationship": "objectList"}.get(kind, "value")
        instance: dict[str, Any] = {"type": kind, member: value}
        if observed_at and kind != "Relationship":
            instance["observedAt"] = observed_at
        out[name] = instance
    return out


def build(type_name: str, **key_values: Any) -> dict[str, Any]:
    """The normalized form of an entity of any contract type, from its keyValues."""
    contract = contracts().named(type_name)
    return to_normalized({"type": type_name, **key_values}, contract)


# -- lighting ------------------------------------------------------------------------------------

class Streetlight(DomainEntity):
    contract_name = "Streetlight"
    location: Point
    status: Literal["ok", "defectiveLamp", "columnIssue", "brokenLantern"]
    powerState: Literal["on", "off", "low", "bootingUp"] | None = None
    name: str | None = None
    illuminanceLevel: float | None = Field(default=None, ge=0, le=1)
    powerConsumption: float | None = None
    refStreetlightGroup: Uri | None = None
    refStreetlightModel: Uri | None = None
    refStreetlightControlCabinet: Uri | None = None
    dateLastLampChange: str | None = None


# -- parking -------------------------------------------------------------------------------------

class ParkingSpot(DomainEntity):
    contract_name = "ParkingSpot"
    location: Point
    status: Literal["free", "occupied", "closed", "unknown"]
    category: list[Literal["onStreet", "offStreet"]] = Field(min_length=1)
    refParkingSite: Uri
    refParkingGroup: Uri | None = None
    name: str | None = None


class OnStreetParking(DomainEntity):
    contract_name = "OnStreetParking"
    location: dict[str, Any] | Point
    name: str | None = None
    category: list[str] | None = None
    totalSpotNumber: int | None = Field(default=None, ge=0)
    availableSpotNumber: int | None = Field(default=None, ge=0)
    refParkingSpot: list[Uri] | None = None


class OffStreetParking(DomainEntity):
    contract_name = "OffStreetParking"
    location: dict[str, Any] | Point
    name: str | None = None
    totalSpotNumber: int | None = Field(default=None, ge=1)
    availableSpotNumber: int | None = Field(default=None, ge=0)
    priceCurrency: str | None = Currency
    status: list[str] | None = None


class ParkingSession(DomainEntity):
    contract_name = "ParkingSession"
    refParkingSite: Uri
    startDate: str
    status: Literal["active", "completed", "cancelled", "expired"]
    refParkingGroup: Uri | None = None
    refParkingSpot: Uri | None = None
    plateHash: str | None = KeyedHash
    msisdnHash: str | None = KeyedHash
    endDate: str | None = None
    paidDuration: str | None = None
    amountCollected: float | None = Amount
    priceCurrency: str | None = Currency
    paymentChannel: Literal["sms", "mobileApp", "parkingMeter", "barrierTicket", "cashDesk",
                            "online"] | None = None


# -- public transport ----------------------------------------------------------------------------

class GtfsAgency(DomainEntity):
    contract_name = "GtfsAgency"
    agencyName: str
    source: str
    timezone: str | None = "Europe/Bucharest"
    language: str | None = None
    phone: str | None = None


class GtfsStop(DomainEntity):
    contract_name = "GtfsStop"
    name: str
    location: Point
    code: str | None = None
    zoneCode: str | None = None
    operatedBy: list[Uri] | None = None


class GtfsRoute(DomainEntity):
    contract_name = "GtfsRoute"
    # GTFS route_type: 0 tram, 3 bus, 11 trolleybus (Bucureşti, Cluj-Napoca, Timişoara...).
    routeType: Literal["0", "1", "2", "3", "4", "5", "6", "7", "11", "12"] | None = None
    shortName: str | None = None
    name: str | None = None
    routeColor: str | None = None
    operatedBy: Uri | None = None


class GtfsTrip(DomainEntity):
    contract_name = "GtfsTrip"
    hasRoute: Uri
    hasService: Uri
    headSign: str | None = None
    direction: Literal[0, 1] | None = None


class FareProduct(DomainEntity):
    contract_name = "FareProduct"
    fareProductId: str = Field(min_length=1)
    amount: float = Field(ge=0)
    priceCurrency: str = Field(pattern=r"^[A-Z]{3}$")
    name: str | None = None
    productKind: Literal["singleRide", "multiRide", "timePass", "dayPass", "monthPass",
                         "seasonPass", "storedValue"] | None = None
    validityDuration: str | None = None
    operatedBy: Uri | None = None


RiderCategory = Literal["adult", "child", "pupil", "student", "senior", "disabled", "veteran",
                        "companion"]
FareMedia = Literal["none", "paperTicket", "transitCard", "contactlessBankCard", "mobileApp"]


class TransitCard(DomainEntity):
    contract_name = "TransitCard"
    cardIdHash: str = KeyedHash
    fareMediaType: FareMedia
    cardStatus: Literal["active", "blocked", "expired", "lost", "stolen", "replaced"]
    isPersonalised: bool | None = None
    riderCategory: RiderCategory | None = None
    balance: float | None = Amount
    priceCurrency: str | None = Currency
    refFareProduct: list[Uri] | None = None


class TicketValidation(DomainEntity):
    contract_name = "TicketValidation"
    dateValidated: str
    validationResult: Literal["accepted", "rejected"]
    rejectionReason: Literal["noValidProduct", "insufficientBalance", "cardBlocked",
                             "cardExpired", "alreadyValidated", "readError", "other"] | None = None
    refTransitCard: Uri | None = None
    refFareProduct: Uri | None = None
    refDevice: Uri | None = None
    refVehicle: Uri | None = None
    hasStop: Uri | None = None
    hasRoute: Uri | None = None
    amountCharged: float | None = Amount
    priceCurrency: str | None = Currency


# -- local taxes ---------------------------------------------------------------------------------

class Taxpayer(DomainEntity):
    contract_name = "Taxpayer"
    taxpayerType: Literal["naturalPerson", "soleTrader", "legalPerson"]
    taxIdentifierHash: str = KeyedHash  # HMAC of the CNP/CUI, never the number
    taxIdentifierType: Literal["CNP", "CUI", "NIF"] | None = None
    fiscalRecordNumber: str | None = None
    hasCompetentAuthority: Uri | None = None


class TaxObligation(DomainEntity):
    contract_name = "TaxObligation"
    refTaxpayer: Uri
    obligationCategory: Literal["buildingTax", "landTax", "vehicleTax", "advertisingTax",
                                "hotelTax", "localFee", "fine", "accessory", "other"]
    fiscalYear: int = Field(ge=1990, le=2100)
    amountDue: float = Field(ge=0)
    priceCurrency: Literal["RON"] = "RON"
    paymentStatus: Literal["unpaid", "partiallyPaid", "paid", "overdue", "cancelled",
                           "inEnforcement"]
    amountPaid: float | None = Amount
    amountOutstanding: float | None = Amount
    legalBasis: str | None = None


class TaxPayment(DomainEntity):
    contract_name = "TaxPayment"
    refTaxpayer: Uri
    amountCollected: float = Field(ge=0)
    priceCurrency: Literal["RON"] = "RON"
    datePaid: str
    refTaxObligation: list[Uri] | None = None
    paymentMethod: Literal["card", "cash", "bankTransfer", "postalOrder"] | None = None
    paymentChannel: Literal["onlineGateway", "cashDesk", "bank", "post",
                            "mobileApp"] | None = None
    receiptNumber: str | None = None
    status: Literal["pending", "settled", "reversed", "refunded"] | None = None


MODELS: dict[str, type[DomainEntity]] = {
    m.contract_name: m for m in (
        Streetlight, ParkingSpot, OnStreetParking, OffStreetParking, ParkingSession,
        GtfsAgency, GtfsStop, GtfsRoute, GtfsTrip, FareProduct, TransitCard, TicketValidation,
        Taxpayer, TaxObligation, TaxPayment)
}
