"""Dead letters keep no direct identifier in clear (adapters/sdk/redact.py, the adapters'
redact hooks)."""

from __future__ import annotations

import re

from adapters.sdk.hooks import Raw
from adapters.sdk.redact import MASK, mask_fields
from adapters.tax.adapter import ADAPTER as TAX
from adapters.ticketing.adapter import ADAPTER as TICKETING

CNP = "1960523160035"


def test_members_masked_at_any_depth_and_in_undecodable_json_text() -> None:
    data = {"card_uid": "04A2B3C4D5", "taps": [{"card_uid": "04FF", "stop": "S01"}]}
    assert mask_fields(data, {"card_uid"}) == {
        "card_uid": MASK, "taps": [{"card_uid": MASK, "stop": "S01"}]}
    line = '{"txn": "T1", "card_uid": "04A2B3C4D5", "stop_id": "S9'  # truncated
    assert "04A2B3C4D5" not in mask_fields(line, {"card_uid"})
    assert mask_fields(f"x;{CNP};y".encode(), (), (re.compile(r"\b\d{13}\b"),)) == f"x;{MASK};y"


def test_the_ticketing_and_tax_adapters_redact_their_identifiers() -> None:
    tap = Raw("taps", 7, '{"card_uid": "04A2B3C4D5", "stop_id": "S99"}')
    assert "04A2B3C4D5" not in str(TICKETING().redact(tap))
    row = Raw("contribuabili.csv", 3, {"rol_fiscal": "R1", "tip": "PF", "cod_fiscal": CNP,
                                       "denumire": "Ion Popescu"})
    kept = TAX().redact(row)
    assert kept["rol_fiscal"] == "R1" and CNP not in str(kept) and "Popescu" not in str(kept)
    assert CNP not in str(TAX().redact(Raw("debite.csv", 4, f"D1;{CNP};cladiri")))
