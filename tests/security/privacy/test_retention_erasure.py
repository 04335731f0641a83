"""Retention cutoffs from ISO 8601 durations, expiry by last change, erasure by lawful basis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broker.validation.contracts import contracts
from security.privacy.erasure import erasure, erasure_allowed, portability_applies
from security.privacy.retention import (
    cutoff,
    entity_expired,
    instance_expired,
    parse_duration,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("retention", "cut"), [
    ("P90D", datetime(2026, 9, 2, 12, 0, tzinfo=UTC)),
    ("P1Y", datetime(2025, 12, 1, 12, 0, tzinfo=UTC)),
    ("P10Y", datetime(2016, 12, 1, 12, 0, tzinfo=UTC)),
    ("P1M", datetime(2026, 11, 1, 12, 0, tzinfo=UTC)),
    ("P2W", datetime(2026, 11, 17, 12, 0, tzinfo=UTC)),
    ("PT36H", datetime(2026, 11, 30, 0, 0, tzinfo=UTC)),
    ("P1Y2M3DT4H5M6S", datetime(2025, 9, 28, 7, 54, 54, tzinfo=UTC)),
])
def test_cutoff(retention: str, cut: datetime) -> None:
    assert cutoff(retention, NOW) == cut


def test_calendar_months_clamp_the_day() -> None:
    assert cutoff("P1Y", datetime(2024, 2, 29, tzinfo=UTC)) == datetime(2023, 2, 28, tzinfo=UTC)
    assert cutoff("P1M", datetime(2026, 3, 31, tzinfo=UTC)) == datetime(2026, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "P", "PT", "90D", "P1.5Y", "P-1D", "1Y", "P1YT",
                                  "P5000Y"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_every_contract_retention_parses() -> None:
    for contract in contracts().values():
        assert cutoff(contract.retention, NOW) < NOW, contract.name


def test_an_entity_expires_by_its_last_change_and_history_by_observation() -> None:
    cut = cutoff("P90D", NOW)
    old = "2026-08-01T00:00:00.000Z"
    recent = "2026-11-30T00:00:00.000Z"
    assert entity_expired({"createdAt": old, "modifiedAt": old}, cut)
    assert not entity_expired({"createdAt": old, "modifiedAt": recent}, cut)  # still in use
    assert entity_expired({"createdAt": old}, cut)
    assert not entity_expired({}, cut)
    assert instance_expired({"observedAt": old, "modifiedAt": recent}, cut)
    assert not instance_expired({"observedAt": recent, "modifiedAt": old}, cut)
    assert instance_expired({"modifiedAt": "2026-08-01T00:00:00+02:00"}, cut)


def test_taxes_are_exempt_from_erasure_with_the_reason() -> None:
    for name in ("Taxpayer", "TaxObligation", "TaxPayment"):
        answer = erasure(contracts().named(name).lawful_basis)
        assert not answer.allowed and answer.article == "17(3)(b)"
        assert "legal obligation" in answer.reason and "17(3)(b)" in answer.reason
    assert not erasure_allowed("public-task")
    assert "public interest" in erasure("public-task").reason


def test_erasure_applies_to_other_bases() -> None:
    for name in ("TicketValidation", "TransitCard", "ParkingSession"):  # contract of carriage
        assert erasure_allowed(contracts().named(name).lawful_basis), name
    assert erasure("consent").article == "17(1)(b)"
    unknown = erasure("whim")
    assert not unknown.allowed and "DPO" in unknown.reason
    assert portability_applies("contract") and not portability_applies("legal-obligation")


def test_cli_retention(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from broker.cli import main

    assert main(["privacy", "retention", "--now", "2026-12-01T12:00:00Z", "--json"]) == 0
    rows = {r["type"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["TicketValidation"] == {"type": "TicketValidation", "retention": "P90D",
                                        "expiredBefore": "2026-09-02T12:00:00Z"}
    assert rows["Taxpayer"]["expiredBefore"] == "2016-12-01T12:00:00Z"
    assert main(["privacy", "retention"]) == 0
    assert "TicketValidation" in capsys.readouterr().out
