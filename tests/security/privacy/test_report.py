"""The records of processing (art. 30), from the contracts and the default policies."""

from __future__ import annotations

import json

import pytest

from broker.cli import main
from broker.validation.contracts import contracts
from security.policy import load_policy
from security.privacy.report import TypeRecord, as_text, records


@pytest.fixture(scope="module")
def by_type() -> dict[str, TypeRecord]:
    return {r.type: r for r in records(load_policy(), contracts())}


def test_every_contract_has_a_record(by_type: dict[str, TypeRecord]) -> None:
    assert set(by_type) == set(contracts().names())


def test_taxpayer_record(by_type: dict[str, TypeRecord]) -> None:
    r = by_type["Taxpayer"]
    assert (r.retention, r.lawful_basis, r.erasure_allowed) == ("P10Y", "legal-obligation", False)
    assert r.personal_data["personal"] == ["alternateName", "description", "name", "refPerson"]
    assert "taxIdentifierHash" in r.personal_data["pseudonymous"]
    # the personal attributes reach only the tax office, for tax collection, in the tax tenant
    personal = set(r.personal_data["personal"])
    receivers = {(g.role, g.purpose, g.tenant) for g in r.grants
                 if personal & {name for name, _ in g.attributes}}
    assert receivers == {("tax-officer", "tax-collection", "tax")}
    officer = next(g for g in r.grants if g.role == "tax-officer")
    assert set(officer.actions) == {"read", "subscribe", "query-history"}


def test_validation_record_names_the_pseudonymised_card_reference(
        by_type: dict[str, TypeRecord]) -> None:
    r = by_type["TicketValidation"]
    assert r.personal_data["special"] == ["riderCategory"]
    operator = [g for g in r.grants if g.role == "transport-operator"]
    assert operator and all(g.purpose == "transport-operations" for g in operator)
    attrs = dict(operator[0].attributes)
    assert attrs["refTransitCard"] == "pseudonymised" and "riderCategory" not in attrs
    assert all("riderCategory" not in dict(g.attributes) for g in r.grants)


def test_types_without_personal_data_say_so() -> None:
    text = as_text(records(load_policy(), contracts()))
    assert "Records of processing" in text and "Taxpayer" in text
    assert "-> tax-officer for tax-collection, tenant tax" in text


def test_cli_report_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["privacy", "report", "--json"]) == 0
    report = {r["type"]: r for r in json.loads(capsys.readouterr().out)}
    card = report["TransitCard"]
    assert card["retention"] == "P3Y" and card["lawfulBasis"] == "contract"
    assert card["erasure"]["allowed"] is True
    assert "refHolder" in card["personalData"]["personal"]
    for recipient in card["recipients"]:
        assert "refHolder" not in recipient["attributes"], recipient
    assert main(["privacy", "report"]) == 0
    assert "Taxpayer" in capsys.readouterr().out
