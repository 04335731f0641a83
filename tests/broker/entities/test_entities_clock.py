"""Broker time (clause 4.6.3): now_iso and normalize_datetime."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.entities.clock import format_instant, normalize_datetime, now_iso
from broker.errors import BadRequestData

T0 = "2026-11-23T10:00:00.000Z"

VALID = {
    "2026-11-23T10:00:00Z": T0,
    "2026-11-23T10:00:00.000Z": T0,
    "2026-11-23T12:00:00+02:00": T0,
    "2026-11-23T12:00:00+0200": T0,
    "2026-11-23T07:30:00-02:30": T0,
    "2026-11-24T01:00:00+15": T0,
    "2026-11-23T10:00Z": T0,
    "2026-11-23T10:00:00": T0,  # no zone: read as UTC
    "2026-11-23T10:00:00.1234Z": "2026-11-23T10:00:00.123Z",  # truncated, not rounded
    "2026-11-23T10:00:00.9999999Z": "2026-11-23T10:00:00.999Z",
    "2026-11-23T10:00:00,5Z": "2026-11-23T10:00:00.500Z",  # clause 4.6.3: "," allowed
    "2026-11-23T00:30:00+01:00": "2026-11-22T23:30:00.000Z",  # crosses midnight
    "0099-01-01T00:00:00Z": "0099-01-01T00:00:00.000Z",  # years below 1000 keep 4 digits
    "2024-02-29T00:00:00Z": "2024-02-29T00:00:00.000Z",
}

INVALID = [
    "garbage", "", "2026-11-23", "10:00:00", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
    "2025-02-29T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T10:60:00Z",
    "2026-11-23T10:00:61Z", "2026-11-23 10:00:00Z", "2026-11-23T10:00:00 Z",
    "2026-11-23t10:00:00z", "2026-11-23T10Z", "20261123T100000Z", "2026-W47-1T10:00Z",
    "2026-11-23T10:00:00+24:00", "2026-11-23T10:00:00+02:61", "2026-11-23T10:00:00.Z",
    "０２０２６-11-23T10:00:00Z", "２０２６-11-23T10:00:00Z", "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:00:00-05:00", "2026-11-23T10:00:00Z\n", 5, None, 1.5, ["2026"],
]


@pytest.mark.parametrize(("text", "iso"), sorted(VALID.items()))
def test_normalize_datetime(text: str, iso: str) -> None:
    assert normalize_datetime(text) == iso


@pytest.mark.parametrize("text", INVALID, ids=repr)
def test_normalize_datetime_refuses(text: Any) -> None:
    with pytest.raises(BadRequestData, match="observedAt"):
        normalize_datetime(text, "observedAt")


def test_now_iso_shape() -> None:
    now = now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
    assert normalize_datetime(now) == now


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.just(UTC)))
def test_format_then_normalize_is_stable(moment: datetime) -> None:
    text = format_instant(moment)
    assert normalize_datetime(text) == text
    assert datetime.fromisoformat(text) == moment.replace(
        microsecond=moment.microsecond // 1000 * 1000)
