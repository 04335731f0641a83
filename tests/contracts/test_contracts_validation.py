"""Validation against the contracts, pure: every type in normalized, concise and keyValues form,
a realistic mistake for each, the upstream quirks, formats and tenant modes."""

from __future__ import annotations

import logging
from typing import Any

import jsonschema
import jsonschema_rs
import pytest

from broker.entities.parse import parse_entity
from broker.entities.render import RenderOptions, render_entity
from broker.errors import BadRequestData
from broker.ld.core import DEFAULT_VOCAB
from broker.ld.termmap import CORE_TERMS
from broker.validation import (
    EntityValidator,
    check_entity,
    check_key_values,
    contracts,
    parse_policy,
)
from broker.validation.formats import FORMATS, format_checker
from broker.validation.modes import Rule
from models.domain import to_normalized
from tests.contracts.examples import HASH, MISTAKES, VALID, broken

NOW = "2026-11-23T10:00:00.000Z"
TYPES = sorted(VALID)


def normalized(name: str, key_values: dict[str, Any]) -> dict[str, Any]:
    return to_normalized({**key_values, "type": name}, contracts().named(name))


def internal(name: str, body: dict[str, Any], *, key_values: bool = False) -> dict[str, Any]:
    return parse_entity(body, contracts().named(name).terms, NOW, key_values=key_values)


@pytest.mark.parametrize("name", TYPES)
def test_valid_entity_in_every_form(name: str) -> None:
    contract = contracts().named(name)
    body = normalized(name, VALID[name])
    entity = internal(name, body)
    assert entity["type"] == [contract.type_iri]
    assert check_entity(entity, contracts()) == []
    concise = render_entity(entity, contract.terms, RenderOptions(format="concise"))
    assert check_entity(internal(name, concise), contracts()) == []
    key_values = {**VALID[name], "type": name}
    assert check_entity(internal(name, key_values, key_values=True), contracts()) == []


@pytest.mark.parametrize("name", TYPES)
def test_realistic_mistake_is_named(name: str) -> None:
    mistake = MISTAKES[name]
    failures = check_entity(internal(name, normalized(name, broken(name))), contracts())
    assert (mistake.attribute, mistake.rule) in {(f.attribute, f.rule) for f in failures}
    assert all(f.type == name for f in failures)
    message = next(f.message for f in failures if f.attribute == mistake.attribute)
    assert message.startswith(mistake.attribute)


@pytest.mark.parametrize("name", TYPES)
def test_both_validators_agree(name: str) -> None:
    # jsonschema-rs answers the common case; jsonschema explains failures: same verdicts.
    contract = contracts().named(name)
    for doc in ({**VALID[name], "type": name}, {**broken(name), "type": name}):
        assert contract.is_valid(doc) == contract.validator.is_valid(doc)


def test_strict_raises_bad_request_data_with_each_violation() -> None:
    check = EntityValidator(parse_policy("strict")).checker("")
    key_values = {**VALID["Streetlight"], "powerState": "dimmed"}
    del key_values["status"]
    entity = internal("Streetlight", normalized("Streetlight", key_values))
    with pytest.raises(BadRequestData) as caught:
        check(entity)
    detail = caught.value.detail
    assert "breaks the contract of Streetlight" in detail and "powerState" in detail
    violations = caught.value.extra["violations"]
    assert {(v["attribute"], v["rule"]) for v in violations} == {
        ("powerState", "enum"), ("status", "required")}


def test_personal_values_are_never_echoed() -> None:
    cnp = "1850101160012"
    entity = internal("Taxpayer", normalized("Taxpayer", {
        **VALID["Taxpayer"], "taxIdentifierHash": cnp}))
    failures = check_entity(entity, contracts())
    assert failures and all(cnp not in f.message for f in failures)
    assert failures[0].message.startswith("taxIdentifierHash: the value breaks pattern")
    # Values of attributes without personal data are quoted, which helps the vendor.
    spot = check_entity(internal("ParkingSpot", normalized("ParkingSpot", broken("ParkingSpot"))),
                        contracts())
    assert "'liber'" in spot[0].message


def test_a_misspelt_attribute_is_caught() -> None:
    # Upstream additionalProperties is never false; the contract lists the attributes.
    entity = internal("Streetlight", normalized("Streetlight", {
        **VALID["Streetlight"], "powerStat": "on"}))
    [failure] = check_entity(entity, contracts())
    assert (failure.attribute, failure.rule) == ("powerStat", "additionalAttributes")


def test_local_times_and_durations_mean_what_the_schema_means() -> None:
    stop = contracts().named("PublicTransportStop")
    hours = [{"opens": "00:00", "closes": "23:59:00", "dayOfWeek": "Sunday"}]
    assert check_key_values({**VALID["PublicTransportStop"], "type": "PublicTransportStop",
                             "openingHoursSpecification": hours}, stop) == []
    # The quirk: a stock RFC 3339 full-time checker wants an offset.
    stock = jsonschema_rs.Draft202012Validator({"type": "string", "format": "time"},
                                               validate_formats=True)
    assert not stock.is_valid("23:59:00")


def test_ip_addresses_need_the_format_checker() -> None:
    device = contracts().named("Device")
    doc = {**VALID["Device"], "type": "Device"}
    assert check_key_values(doc, device) == []
    schema = {"type": "array", "items": {"type": "string",
                                         "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]}}
    assert not jsonschema.Draft202012Validator(schema).is_valid(doc["ipAddress"])


@pytest.mark.parametrize(("route_type", "ok"), [("11", True), ("3", True), ("0", True),
                                                ("12", True), ("9", False), ("800", False)])
def test_trolleybus_routes(route_type: str, ok: bool) -> None:
    doc = {**VALID["GtfsRoute"], "type": "GtfsRoute", "routeType": route_type}
    assert (check_key_values(doc, contracts().named("GtfsRoute")) == []) is ok


@pytest.mark.parametrize(("currency", "ok"), [("RON", True), ("EUR", False), ("lei", False)])
def test_local_taxes_are_in_lei(currency: str, ok: bool) -> None:
    doc = {**VALID["TaxPayment"], "type": "TaxPayment", "priceCurrency": currency}
    assert (check_key_values(doc, contracts().named("TaxPayment")) == []) is ok


@pytest.mark.parametrize("identifier", ["1850101160012", "RO12345678", "12345678",
                                        HASH.upper(), HASH[:63]])
def test_cnp_and_cui_only_as_keyed_hashes(identifier: str) -> None:
    doc = {**VALID["Taxpayer"], "type": "Taxpayer", "taxIdentifierHash": identifier}
    [failure] = check_key_values(doc, contracts().named("Taxpayer"))
    assert failure.rule == "pattern"


def test_diacritics_in_names_and_ids() -> None:
    doc = {**VALID["GtfsStop"], "type": "GtfsStop", "id": "urn:ngsi-ld:GtfsStop:piaţa-mărăşti",
           "name": "Piaţa Mărăşti – Ştefan cel Mare"}
    assert check_key_values(doc, contracts().named("GtfsStop")) == []


def test_types_are_matched_by_iri() -> None:
    # "Streetlight" without the Smart Data Models @context is another type (default vocab).
    body = {"id": "urn:ngsi-ld:Streetlight:x", "type": "Streetlight",
            "powerState": {"type": "Property", "value": "dimmed"}}
    entity = parse_entity(body, CORE_TERMS, NOW)
    assert entity["type"] == [DEFAULT_VOCAB + "Streetlight"]
    assert check_entity(entity, contracts()) == []
    [failure] = check_entity(entity, contracts(), closed=True)
    assert (failure.attribute, failure.rule) == ("type", "contract")


def test_multi_attribute_instances_are_each_checked() -> None:
    body = normalized("Streetlight", VALID["Streetlight"])
    body["powerState"] = [{"type": "Property", "value": "on"},
                          {"type": "Property", "value": "dimmed",
                           "datasetId": "urn:ngsi-ld:Dataset:controller"}]
    [failure] = check_entity(internal("Streetlight", body), contracts())
    assert (failure.attribute, failure.rule) == ("powerState", "enum")
    assert "'dimmed'" in failure.message


def test_language_property_and_datetime_values() -> None:
    body = normalized("Streetlight", VALID["Streetlight"])
    body["name"] = {"type": "LanguageProperty", "languageMap": {"ro": "Stâlp", "en": "Pole"}}
    body["dateLastLampChange"] = {"type": "Property", "value": {
        "@type": "DateTime", "@value": "2026-03-01T08:30:00Z"}}
    assert check_entity(internal("Streetlight", body), contracts()) == []


def test_an_entity_of_two_contract_types_keeps_both() -> None:
    entity = internal("Streetlight", normalized("Streetlight", VALID["Streetlight"]))
    entity["type"].append(contracts().named("Device").type_iri)
    failures = check_entity(entity, contracts())
    # An attribute one of the contracts lists is no stranger to the other.
    assert {(f.type, f.attribute, f.rule) for f in failures} == {
        ("Device", "controlledProperty", "required")}


# -- formats -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "value", "ok"), [
    ("date-time", "2026-11-23T10:00:00Z", True), ("date-time", "2026-11-23T10:00:00+02:00", True),
    ("date-time", "2026-11-23T10:00:00.123Z", True), ("date-time", "2026-11-23 10:00", False),
    ("date-time", "2026-02-30T10:00:00Z", False), ("date-time", "23.11.2026", False),
    ("date", "2026-03-31", True), ("date", "2026-13-01", False),
    ("time", "08:00", True), ("time", "23:59:00", True), ("time", "23:59:60", True),
    ("time", "07:30:00.5+02:00", True), ("time", "24:00", False), ("time", "7:30", False),
    ("duration", "PT60M", True), ("duration", "P1Y2M10DT2H30M", True), ("duration", "P2W", True),
    ("duration", "PT0.5S", True), ("duration", "P", False), ("duration", "PT", False),
    ("duration", "60 min", False), ("duration", "P1H", False),
    ("uri", "urn:ngsi-ld:Streetlight:1", True), ("uri", "https://ratcraiova.ro", True),
    ("uri", "no scheme", False), ("email", "primaria@craiova.ro", True),
    ("idn-email", "ştefan@primăria.ro", True), ("email", "nobody", False),
    ("ipv4", "192.0.2.17", True), ("ipv4", "192.0.2.300", False),
    ("ipv6", "2001:db8::17", True), ("ipv6", "192.0.2.17", False),
])
def test_formats(fmt: str, value: str, ok: bool) -> None:
    assert FORMATS[fmt](value) is ok
    assert format_checker().conforms(value, fmt) is ok


# -- modes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("default", "tenants", "tenant", "rule"), [
    ("strict", "", "", Rule("strict")),
    ("", "", "any", Rule("strict")),
    ("warn", "", "any", Rule("warn")),
    ("strict", "tax=strict+closed,demo=off", "tax", Rule("strict", closed=True)),
    ("strict", "tax=strict+closed,demo=off", "demo", Rule("off")),
    ("strict", "tax=strict+closed, demo = off ", "other", Rule("strict")),
    ("off", "@default=warn", "", Rule("warn")),
])
def test_policy(default: str, tenants: str, tenant: str, rule: Rule) -> None:
    assert parse_policy(default, tenants).rule(tenant) == rule


@pytest.mark.parametrize(("default", "tenants"), [
    ("loud", ""), ("strict+open", ""), ("strict", "tax"), ("strict", "=off"),
    ("strict", "tax=sometimes")])
def test_bad_policy(default: str, tenants: str) -> None:
    with pytest.raises(ValueError):
        parse_policy(default, tenants)


def test_warn_accepts_logs_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    validator = EntityValidator(parse_policy("warn"))
    entity = internal("ParkingSpot", normalized("ParkingSpot", broken("ParkingSpot")))
    with caplog.at_level(logging.WARNING, "cetate.validation"):
        validator.checker("parking")(entity)
        validator.checker("parking")(entity)
    assert validator.warnings[("parking", "ParkingSpot")] == 2
    assert "status" in caplog.records[0].getMessage()


def test_off_checks_nothing() -> None:
    entity = internal("ParkingSpot", normalized("ParkingSpot", broken("ParkingSpot")))
    EntityValidator(parse_policy("off")).checker("")(entity)
