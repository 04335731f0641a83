"""Keyed pseudonyms: deterministic under one key, different under another, never the bare hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from security.privacy.pseudonym import (
    DEV_KEY,
    Pseudonymiser,
    PseudonymKeyError,
    key_from_env,
    pseudonymiser_from_env,
)

CARD = "04:A2:19:7C:3B:55:80"


def test_the_same_value_under_the_same_key_gives_the_same_pseudonym() -> None:
    a, b = Pseudonymiser(b"k" * 32), Pseudonymiser(b"k" * 32)
    assert a(CARD) == b(CARD)
    assert len(a(CARD)) == 64 and int(a(CARD), 16) >= 0  # hex HMAC-SHA256
    assert a(CARD) != a(CARD + " ")


def test_another_key_or_domain_gives_another_pseudonym() -> None:
    assert Pseudonymiser(b"k" * 32)(CARD) != Pseudonymiser(b"j" * 32)(CARD)
    assert Pseudonymiser(b"k" * 32)(CARD) != Pseudonymiser(b"k" * 32, b"audit\x00")(CARD)
    # not a plain hash that anyone could recompute from a guessed card number
    assert Pseudonymiser(b"k" * 32)(CARD) != hashlib.sha256(CARD.encode()).hexdigest()


def test_short_keys_are_refused_and_the_key_is_never_shown() -> None:
    with pytest.raises(PseudonymKeyError):
        Pseudonymiser(b"short")
    assert "k" * 32 not in repr(Pseudonymiser(b"k" * 32))


def test_key_from_env(tmp_path: Path) -> None:
    key = tmp_path / "pseudonym.key"
    key.write_bytes(b"\x01" * 32)
    assert key_from_env({"CETATE_PSEUDONYM_KEY_FILE": str(key)}) == b"\x01" * 32
    assert pseudonymiser_from_env({"CETATE_PSEUDONYM_KEY_FILE": str(key)})(CARD) == \
        Pseudonymiser(b"\x01" * 32)(CARD)
    with pytest.raises(PseudonymKeyError, match="CETATE_PSEUDONYM_KEY_FILE"):
        key_from_env({})  # no silent default
    assert key_from_env({"CETATE_PSEUDONYM_DEV_KEY": "1"}) == DEV_KEY
    with pytest.raises(PseudonymKeyError, match="No such file"):
        key_from_env({"CETATE_PSEUDONYM_KEY_FILE": str(tmp_path / "missing")})
    key.write_bytes(b"\x01" * 8)
    with pytest.raises(PseudonymKeyError, match="at least 16 bytes"):
        key_from_env({"CETATE_PSEUDONYM_KEY_FILE": str(key)})
