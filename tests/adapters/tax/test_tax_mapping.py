"""The tax adapter's pure core: CNP and CUI check digits, lei with two decimals, the export
and the gateway's payments -> Taxpayer, TaxObligation, TaxPayment that keep the contracts,
with every identifier only as a keyed pseudonym and impossible values refused."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from adapters.sdk import BadRecord, Pseudonymiser
from adapters.sdk.sources.files import csv_records
from adapters.sdk.validate import problems
from adapters.tax.identifiers import (
    InvalidIdentifier,
    cnp_check_digit,
    parse_cnp,
    parse_cui,
    parse_tax_id,
)
from adapters.tax.mapping import ledger_of, map_obligation, map_payment, map_taxpayer
from adapters.tax.parse import lei, lei_ro, parse_obligation, parse_payment, parse_taxpayer
from adapters.tax.simulator import OBLIGATIONS_FILE, TAXPAYERS_FILE, TaxSystem
from broker.validation import contracts
from tests.adapters.support import TEST_SECRET

PSEUDONYMISE = Pseudonymiser(TEST_SECRET.encode())


def test_cnp_check_digit_by_hand() -> None:
    # 1 9 6 0 1 0 1 1 6 0 0 1 times 2 7 9 1 4 6 3 5 8 2 7 9 = 188; 188 mod 11 = 1
    assert cnp_check_digit("196010116001") == 1
    assert parse_cnp("1960101160011").value == "1960101160011"
    assert parse_tax_id(" 5000229161231 ").kind == "CNP"  # 29 Feb 2000, born in Dolj


@pytest.mark.parametrize(("cnp", "reason"), [
    ("1960101160012", "bad check digit"),
    ("1961301160011", "date of birth"),
    ("1960230160011", "date of birth"),  # 30 February
    ("1960101990011", "county"),
    ("1960101160001", "serial 000"),
    ("0960101160011", "first digit"),
    ("196010116001", "not 13 digits"),
])
def test_impossible_cnps(cnp: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason) as caught:
        parse_cnp(cnp)
    assert cnp not in str(caught.value)  # a reason never quotes the number


def test_cui_check_digit() -> None:
    # 001439984 times 753217532 = 154; 154 * 10 mod 11 = 0
    assert parse_cui("RO14399840").value == "14399840"
    assert parse_cui("14399840").value == "14399840"
    with pytest.raises(InvalidIdentifier, match="bad check digit"):
        parse_cui("14399841")
    with pytest.raises(InvalidIdentifier, match="not 2 to 10 digits"):
        parse_cui("RO-1439")


def test_lei_have_two_decimals_and_are_never_negative() -> None:
    assert lei_ro("1.234,56", "x") == Decimal("1234.56")
    assert lei_ro("1234,5", "x") == Decimal("1234.50")
    assert lei_ro("1.234", "x") == Decimal("1234.00")
    assert lei_ro("", "x") == Decimal("0.00")
    assert lei("245.50", "x") == Decimal("245.50") and lei(72, "x") == Decimal("72.00")
    for bad, reason in (("12,345", "more than 2 decimals"), ("-1,00", "negative"),
                        ("doi lei", "not a sum")):
        with pytest.raises(BadRecord, match=reason):
            lei_ro(bad, "suma")
    for value in ("12.345", "-0.01", True, None, "NaN"):
        with pytest.raises(BadRecord):
            lei(value, "amount")


@pytest.fixture(scope="module")
def system() -> TaxSystem:
    return TaxSystem(seed=4, taxpayers=40, payments=60)


def export(system: TaxSystem) -> dict[str, list[dict[str, str]]]:
    out = {}
    for name, data in system.export_files().items():
        rows = list(csv_records(data.decode("utf-8", "surrogateescape"), "utf-8", ";"))
        assert all(error == "" for _, error in rows)
        out[name] = [row for row, _ in rows]
    return out


def test_the_whole_export_and_the_gateway_map_to_valid_pseudonymised_entities(
        system: TaxSystem) -> None:
    rows = export(system)
    ledger = ledger_of(rows[TAXPAYERS_FILE], rows[OBLIGATIONS_FILE])
    taxpayers = [map_taxpayer(parse_taxpayer(r), ledger, PSEUDONYMISE)
                 for r in rows[TAXPAYERS_FILE]]
    obligations = [map_obligation(parse_obligation(r), ledger, PSEUDONYMISE)
                   for r in rows[OBLIGATIONS_FILE]]
    payments = [map_payment(parse_payment(p), ledger, PSEUDONYMISE) for p in system.gateway]
    everything = taxpayers + obligations + payments
    for entity in everything:
        assert problems(entity) == [], entity["id"]
    text = json.dumps(everything, ensure_ascii=False)
    for person in system.people:
        assert person["cod_fiscal"].removeprefix("RO") not in text
        if person["tip"] != "PJ":
            assert person["denumire"] not in text  # a person's name is not published
    for debit in system.debits:
        if debit["bun_impozabil"]:
            assert debit["bun_impozabil"] not in text
            assert debit["bun_impozabil"].replace(" ", "") not in text
    firm = next(p for p in system.people if p["tip"] == "PJ")
    hashed = PSEUDONYMISE("cui", firm["cod_fiscal"].removeprefix("RO"))
    entity = next(t for t in taxpayers if t["id"] == f"urn:ngsi-ld:Taxpayer:{hashed}")
    assert entity["name"]["value"] == firm["denumire"]
    assert entity["taxIdentifierHash"]["value"] == hashed
    assert entity["taxpayerType"]["value"] == "legalPerson"
    assert {e["@context"][0] for e in everything} == {"https://cetate.city/ns/context.jsonld"}


MONEY = ("amount", "installments", "balance", "payment")


def test_every_sum_of_money_goes_in_a_personal_attribute(system: TaxSystem) -> None:
    rows = export(system)
    ledger = ledger_of(rows[TAXPAYERS_FILE], rows[OBLIGATIONS_FILE])
    published = [map_obligation(parse_obligation(r), ledger, PSEUDONYMISE)
                 for r in rows[OBLIGATIONS_FILE]]
    published += [map_payment(parse_payment(p), ledger, PSEUDONYMISE) for p in system.gateway]
    for entity in published:
        contract = contracts().named(entity["type"])
        for name in entity:
            if any(word in name.lower() for word in MONEY) and name != "paymentChannel" \
                    and name != "paymentMethod":
                assert contract.personal_data(name) == "personal", (entity["type"], name)
    assert not any("earlyPaymentDiscount" in e for e in published)


def test_an_obligation_in_detail(system: TaxSystem) -> None:
    rows = export(system)
    ledger = ledger_of(rows[TAXPAYERS_FILE], rows[OBLIGATIONS_FILE])
    row = next(r for r in rows[OBLIGATIONS_FILE] if r["categorie"] == "IMPOZIT_MIJLOACE_TRANSPORT")
    entity = map_obligation(parse_obligation(row), ledger, PSEUDONYMISE)
    due = Decimal(row["suma_datorata"].replace(",", "."))
    assert entity["amountDue"]["value"] == float(due)
    assert entity["priceCurrency"]["value"] == "RON"
    assert entity["obligationCategory"]["value"] == "vehicleTax"
    plate = PSEUDONYMISE("plate", row["bun_impozabil"].replace(" ", ""))
    assert entity["refTaxableAsset"]["object"] == f"urn:ngsi-ld:Vehicle:{plate}"
    assert [i["dueDate"] for i in entity["installments"]["value"]] == ["2026-03-31",
                                                                      "2026-09-30"]
    assert sum(Decimal(str(i["amount"])) for i in entity["installments"]["value"]) == due
    owner = next(p for p in system.people if p["rol_fiscal"] == row["rol_fiscal"])
    kind = "cnp" if owner["tip"] == "PF" else "cui"
    assert entity["refTaxpayer"]["object"] == \
        f"urn:ngsi-ld:Taxpayer:{PSEUDONYMISE(kind, owner['cod_fiscal'].removeprefix('RO'))}"


def payment(system: TaxSystem, **change: Any) -> dict[str, Any]:
    return {**system.gateway[0], **change}


@pytest.mark.parametrize(("change", "reason"), [
    ({"items": [{"debitId": "D2026-999999", "amount": "10.00"}], "amount": "10.00"},
     "unknown obligation D2026-999999"),
    ({"amount": "-10.00", "items": [{"debitId": "D2026-000001", "amount": "-10.00"}]},
     "negative amount"),
    ({"currency": "EUR"}, "currency is not RON"),
    ({"amount": "1.00"}, "do not add up"),
    ({"payerId": "1960101160012"}, "CNP: bad check digit"),
    ({"status": "MAYBE"}, "status is not one of"),
    ({"items": []}, "no items"),
])
def test_impossible_payments_are_bad_records(system: TaxSystem, change: dict,
                                             reason: str) -> None:
    rows = export(system)
    ledger = ledger_of(rows[TAXPAYERS_FILE], rows[OBLIGATIONS_FILE])
    with pytest.raises(BadRecord, match=reason) as caught:
        map_payment(parse_payment(payment(system, **change)), ledger, PSEUDONYMISE)
    assert "1960101160012" not in caught.value.reason


def test_references_to_refused_records_are_refused_with_them() -> None:
    system = TaxSystem(seed=4, taxpayers=40, payments=60,
                       bad=frozenset({"bad-cnp", "negative-amount"}))
    rows = export(system)
    ledger = ledger_of(rows[TAXPAYERS_FILE], rows[OBLIGATIONS_FILE])
    bad_person = rows[TAXPAYERS_FILE][next(i for i, p in enumerate(system.people)
                                           if p["tip"] == "PF")]
    with pytest.raises(BadRecord, match="CNP: bad check digit"):
        parse_taxpayer(bad_person)
    orphan = next(r for r in rows[OBLIGATIONS_FILE] if r["rol_fiscal"] == bad_person["rol_fiscal"])
    with pytest.raises(BadRecord, match="unknown taxpayer"):
        map_obligation(parse_obligation(orphan), ledger, PSEUDONYMISE)
    with pytest.raises(BadRecord, match="suma_datorata: negative amount"):
        parse_obligation(rows[OBLIGATIONS_FILE][3])
    refused = rows[OBLIGATIONS_FILE][3]["id_debit"]
    assert refused in ledger.refused and orphan["id_debit"] in ledger.refused
    pay = payment(system, items=[{"debitId": refused, "amount": system.gateway[0]["amount"]}])
    with pytest.raises(BadRecord, match=f"obligation {refused} was refused"):
        map_payment(parse_payment(pay), ledger, PSEUDONYMISE)


@pytest.mark.parametrize(("change", "reason"), [
    ({"tip": "PJ"}, "a legal person .PJ. is identified by a CUI"),
    ({"tip": "XX"}, "tip is not one of"),
    ({"cod_fiscal": "123"}, "CUI: bad check digit"),
])
def test_impossible_taxpayers(system: TaxSystem, change: dict, reason: str) -> None:
    person = next(p for p in system.people if p["tip"] == "PF")
    with pytest.raises(BadRecord, match=reason):
        parse_taxpayer({**person, **change})


def test_an_obligation_paid_beyond_what_is_owed_is_refused(system: TaxSystem) -> None:
    rows = export(system)
    ledger = ledger_of(rows[TAXPAYERS_FILE], rows[OBLIGATIONS_FILE])
    row = {**rows[OBLIGATIONS_FILE][0], "suma_datorata": "100,00", "majorari": "",
           "achitat": "100,01"}
    with pytest.raises(BadRecord, match="more than the amount owed"):
        map_obligation(parse_obligation(row), ledger, PSEUDONYMISE)
