"""One realistic valid entity (keyValues) of every contract type, and a realistic mistake in it.

Romanian data: diacritics in names, RON amounts, trolleybus routes (GTFS route type 11),
CNP/CUI only as keyed hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HASH = "3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea"  # HMAC-SHA256, hex
HASH64 = "P3m7e0NbBTIWUdrv03TNxoHcBvqmXjdOODN7iMoEbeo"  # the same, base64url
CRAIOVA = {"type": "Point", "coordinates": [23.7967, 44.3190]}
ZONE = {"type": "Polygon", "coordinates": [[[23.79, 44.31], [23.80, 44.31], [23.80, 44.3175],
                                            [23.79, 44.31]]]}
ADDRESS = {"streetAddress": "Calea Unirii 12", "addressLocality": "Craiova",
           "addressRegion": "Dolj", "addressCountry": "RO", "postalCode": "200585"}


def urn(kind: str, name: str) -> str:
    return f"urn:ngsi-ld:{kind}:{name}"


@dataclass(frozen=True)
class Mistake:
    """A change that breaks the contract: attributes to set (None: remove), and which attribute
    and rule the failure must name."""

    change: dict[str, Any]
    attribute: str
    rule: str


VALID: dict[str, dict[str, Any]] = {
    "Streetlight": {
        "id": urn("Streetlight", "craiova-calea-unirii-12"), "location": CRAIOVA, "status": "ok",
        "powerState": "on", "name": "Stâlp Calea Unirii 12", "illuminanceLevel": 0.8,
        "refStreetlightGroup": urn("StreetlightGroup", "calea-unirii"),
        "dateLastLampChange": "2026-03-01T08:30:00Z", "lanternHeight": 9.5},
    "StreetlightControlCabinet": {
        "id": urn("StreetlightControlCabinet", "pt-12"), "location": CRAIOVA,
        "refStreetlightGroup": [urn("StreetlightGroup", "calea-unirii")],
        "workingMode": "automatic", "name": "Punct de aprindere Ştirbei Vodă",
        "energyConsumed": 1520.5, "dateLastProgramming": "2026-10-01T12:00:00Z"},
    "StreetlightGroup": {
        "id": urn("StreetlightGroup", "calea-unirii"), "location": ZONE, "powerState": "on",
        "switchingMode": ["night-ON"], "name": "Calea Unirii, tronson Centru",
        "refStreetlight": [urn("Streetlight", "craiova-calea-unirii-12")]},
    "StreetlightModel": {
        "id": urn("StreetlightModel", "led-60w"), "name": "Corp LED 60 W", "lampTechnology": "LED",
        "category": ["lamppost"], "colorTemperature": 4000, "powerConsumption": 60},
    "Device": {
        "id": urn("Device", "controler-pt-12"), "controlledProperty": ["electricityConsumption"],
        "category": ["meter"], "ipAddress": ["192.0.2.17", "2001:db8::17"],
        "serialNumber": "ŞN-2026-0017", "batteryLevel": 0.9, "deviceState": "ok",
        "dateInstalled": "2026-02-14T09:00:00Z"},
    "OnStreetParking": {
        "id": urn("OnStreetParking", "craiova-unirii"), "location": ZONE,
        "name": "Zona Unirii – plată cu SMS", "category": ["feeCharged", "shortTerm"],
        "totalSpotNumber": 40, "availableSpotNumber": 12, "chargeType": ["temporaryPrice"],
        "parkingMode": "parallelParking"},
    "OffStreetParking": {
        "id": urn("OffStreetParking", "parcare-electroputere"), "location": CRAIOVA,
        "name": "Parcarea Electroputere Parc", "category": ["parkingLot", "feeCharged"],
        "totalSpotNumber": 350, "availableSpotNumber": 88, "priceRatePerMinute": 0.05,
        "priceCurrency": "RON", "status": ["spacesAvailable"], "address": ADDRESS},
    "ParkingSpot": {
        "id": urn("ParkingSpot", "craiova-unirii-12"), "location": CRAIOVA, "status": "free",
        "category": ["onStreet"], "refParkingSite": urn("OnStreetParking", "craiova-unirii"),
        "name": "Loc 12, Calea Unirii"},
    "ParkingGroup": {
        "id": urn("ParkingGroup", "unirii-rezidenti"), "refParkingSite":
            urn("OnStreetParking", "craiova-unirii"), "category": ["onlyResidents", "onStreet"],
        "totalSpotNumber": 10, "name": "Locuri pentru rezidenţi"},
    "ParkingAccess": {
        "id": urn("ParkingAccess", "electroputere-intrare-1"), "location": CRAIOVA,
        "refOffStreetParking": urn("OffStreetParking", "parcare-electroputere"),
        "category": ["entrance", "vehicleEntrance"], "name": "Intrare Calea Bucureşti"},
    "GtfsAgency": {
        "id": urn("GtfsAgency", "rat-craiova"), "agencyName": "Regia Autonomă de Transport Craiova",
        "source": "https://www.ratcraiova.ro/gtfs", "timezone": "Europe/Bucharest",
        "language": "ro", "page": "https://www.ratcraiova.ro"},
    "GtfsStop": {
        "id": urn("GtfsStop", "craiova-billa-brazda"), "name": "Billa Brazda lui Novac",
        "location": CRAIOVA, "code": "1042", "zoneCode": "Z1",
        "operatedBy": [urn("GtfsAgency", "rat-craiova")]},
    "GtfsRoute": {
        "id": urn("GtfsRoute", "timisoara-troleibuz-14"), "shortName": "14",
        "name": "Piaţa Mărăşti – Calea Şagului", "routeType": "11", "routeColor": "0055A4",
        "operatedBy": urn("GtfsAgency", "stpt")},
    "GtfsTrip": {
        "id": urn("GtfsTrip", "timisoara-14-0715"), "hasRoute": urn("GtfsRoute",
                                                                    "timisoara-troleibuz-14"),
        "hasService": urn("GtfsService", "lucru"), "headSign": "Calea Şagului", "direction": 0},
    "PublicTransportStop": {
        "id": urn("PublicTransportStop", "cluj-piata-unirii"), "name": "Piaţa Unirii",
        "transportationType": [3, 11], "location": {"type": "Point",
                                                    "coordinates": [23.5893, 46.7697]},
        "openingHoursSpecification": [{"opens": "05:00", "closes": "23:30:00",
                                       "dayOfWeek": "Monday"}]},
    "Vehicle": {
        "id": urn("Vehicle", "rat-craiova-troleibuz-21"), "vehicleType": "bus",
        "category": ["public"], "location": CRAIOVA, "serviceStatus": "onRoute", "speed": 32.5,
        "fleetVehicleId": "21", "name": "Troleibuz Astra Irisbus 21"},
    "Organization": {
        "id": urn("Organization", "primaria-craiova"), "legalName": "Municipiul Craiova",
        "name": "Primăria Municipiului Craiova", "taxID": HASH, "address": ADDRESS},
    "Person": {
        "id": urn("Person", HASH[:16]), "givenName": "Ştefan", "familyName": "Ionescu-Brânză",
        "email": "stefan.ionescu@example.ro", "telephone": "+40 251 416 235"},
    "PublicService": {
        "id": urn("PublicService", "autorizatie-construire"), "identifier": "PS-URB-001",
        "name": "Eliberarea autorizaţiei de construire",
        "description": "Autorizaţie pentru lucrări de construire, conform Legii 50/1991",
        "hasCompetentAuthority": urn("Organization", "primaria-craiova"),
        "hasCost": [urn("Cost", "taxa-autorizatie")], "language": ["ro"], "status": "Completed"},
    "Cost": {
        "id": urn("Cost", "taxa-autorizatie"), "identifier": "COST-URB-001",
        "name": "Taxa pentru eliberarea autorizaţiei de construire", "amount": 120.50,
        "currency": "RON"},
    "FareProduct": {
        "id": urn("FareProduct", "rat-craiova-60min"), "fareProductId": "60MIN",
        "name": "Bilet 60 de minute", "productKind": "timePass", "amount": 3.0,
        "priceCurrency": "RON", "validityDuration": "PT60M", "transferAllowed": True,
        "fareMediaType": ["transitCard", "contactlessBankCard"],
        "operatedBy": urn("GtfsAgency", "rat-craiova")},
    "TransitCard": {
        "id": urn("TransitCard", HASH[:24]), "cardIdHash": HASH64,
        "fareMediaType": "transitCard", "cardStatus": "active", "isPersonalised": True,
        "riderCategory": "student", "balance": 42.5, "priceCurrency": "RON",
        "refFareProduct": [urn("FareProduct", "rat-craiova-60min")]},
    "TicketValidation": {
        "id": urn("TicketValidation", "2026-11-23-0001"), "dateValidated": "2026-11-23T07:41:12Z",
        "validationResult": "accepted", "transactionType": "checkIn",
        "refTransitCard": urn("TransitCard", HASH[:24]), "amountCharged": 3.0,
        "priceCurrency": "RON", "hasStop": urn("GtfsStop", "craiova-billa-brazda"),
        "refVehicle": urn("Vehicle", "rat-craiova-troleibuz-21"), "direction": 1},
    "ParkingSession": {
        "id": urn("ParkingSession", "sms-7731"), "refParkingSite":
            urn("OnStreetParking", "craiova-unirii"), "plateHash": HASH, "msisdnHash": HASH64,
        "startDate": "2026-11-23T09:00:00+02:00", "paidDuration": "PT1H30M",
        "amountCollected": 4.5, "priceCurrency": "RON", "paymentChannel": "sms",
        "status": "active"},
    "Taxpayer": {
        "id": urn("Taxpayer", HASH[:24]), "taxpayerType": "naturalPerson",
        "taxIdentifierType": "CNP", "taxIdentifierHash": HASH, "fiscalRecordNumber": "R-104233",
        "hasCompetentAuthority": urn("Organization", "primaria-craiova")},
    "TaxObligation": {
        "id": urn("TaxObligation", "2026-cladiri-104233"), "refTaxpayer":
            urn("Taxpayer", HASH[:24]), "obligationCategory": "buildingTax", "fiscalYear": 2026,
        "legalBasis": "HCL 123/2025", "amountDue": 812.40, "amountPaid": 406.20,
        "amountOutstanding": 406.20, "priceCurrency": "RON", "paymentStatus": "partiallyPaid",
        "installments": [{"dueDate": "2026-03-31", "amount": 406.20},
                         {"dueDate": "2026-09-30", "amount": 406.20}]},
    "TaxPayment": {
        "id": urn("TaxPayment", "ghiseul-2026-556677"), "refTaxpayer": urn("Taxpayer", HASH[:24]),
        "refTaxObligation": [urn("TaxObligation", "2026-cladiri-104233")],
        "amountCollected": 406.20, "priceCurrency": "RON", "datePaid": "2026-03-28T14:05:00Z",
        "paymentMethod": "card", "paymentChannel": "onlineGateway", "status": "settled"},
}

MISTAKES: dict[str, Mistake] = {
    "Streetlight": Mistake({"powerState": "dimmed"}, "powerState", "enum"),
    "StreetlightControlCabinet": Mistake({"workingMode": None}, "workingMode", "required"),
    "StreetlightGroup": Mistake({"switchingMode": ["noapte"]}, "switchingMode", "enum"),
    "StreetlightModel": Mistake({"lampTechnology": "halogen"}, "lampTechnology", "enum"),
    "Device": Mistake({"ipAddress": ["192.0.2.300"]}, "ipAddress", "format"),
    "OnStreetParking": Mistake({"availableSpotNumber": -3}, "availableSpotNumber", "minimum"),
    "OffStreetParking": Mistake({"totalSpotNumber": 0}, "totalSpotNumber", "minimum"),
    "ParkingSpot": Mistake({"status": "liber"}, "status", "enum"),
    "ParkingGroup": Mistake({"refParkingSite": None}, "refParkingSite", "required"),
    "ParkingAccess": Mistake({"locaton": CRAIOVA}, "locaton", "additionalAttributes"),
    "GtfsAgency": Mistake({"agencyName": None}, "agencyName", "required"),
    "GtfsStop": Mistake({"name": None}, "name", "required"),
    "GtfsRoute": Mistake({"routeType": "9"}, "routeType", "enum"),
    "GtfsTrip": Mistake({"direction": 2}, "direction", "enum"),
    "PublicTransportStop": Mistake({"openingHoursSpecification": [{"opens": "25:00"}]},
                                   "openingHoursSpecification", "format"),
    "Vehicle": Mistake({"vehicleType": None}, "vehicleType", "required"),
    "Organization": Mistake({"taxID": "RO12345678"}, "taxID", "pattern"),
    "Person": Mistake({"email": "stefan.ionescu"}, "email", "format"),
    "PublicService": Mistake({"hasCompetentAuthority": None}, "hasCompetentAuthority",
                             "required"),
    "Cost": Mistake({"currency": "lei"}, "currency", "pattern"),
    "FareProduct": Mistake({"validityDuration": "60 de minute"}, "validityDuration", "format"),
    "TransitCard": Mistake({"cardIdHash": "04A2B9C1D25E80"}, "cardIdHash", "pattern"),
    "TicketValidation": Mistake({"validationResult": "ok"}, "validationResult", "enum"),
    "ParkingSession": Mistake({"amountCollected": -4.5}, "amountCollected", "minimum"),
    "Taxpayer": Mistake({"taxIdentifierHash": "1850101160012"}, "taxIdentifierHash", "pattern"),
    "TaxObligation": Mistake({"priceCurrency": "EUR"}, "priceCurrency", "const"),
    "TaxPayment": Mistake({"datePaid": "28.03.2026"}, "datePaid", "format"),
}


def broken(type_name: str) -> dict[str, Any]:
    """VALID[type_name] with its mistake made."""
    out = dict(VALID[type_name])
    for name, value in MISTAKES[type_name].change.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out
