"""Keyed pseudonyms: deterministic, keyed, separated by kind, in the contracts' keyedHash form;
no key, no run (outside --simulate)."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import pytest

from adapters.sdk import ConfigError, Pseudonymiser
from adapters.sdk.pseudonymise import DEV_KEY, ENV_FILE, ENV_KEY, pseudonymiser, read_key

KEY = b"k" * 32
KEYED_HASH = re.compile(r"^([0-9a-f]{64}|[A-Za-z0-9_-]{43})$")  # contracts/schemas/Cetate/common


def test_deterministic_and_in_keyed_hash_form() -> None:
    first = Pseudonymiser(KEY)("cnp", "1800101221144")
    assert first == Pseudonymiser(KEY)("cnp", "1800101221144")
    assert KEYED_HASH.match(first)


def test_is_an_hmac_of_the_kind_and_value_never_a_plain_hash() -> None:
    value = "1800101221144"
    got = Pseudonymiser(KEY)("cnp", value)
    assert got != hashlib.sha256(value.encode()).hexdigest()
    expected = hmac.new(KEY, b"cetate-pseudonym/v1\x00cnp\x00" + value.encode(),
                        hashlib.sha256).hexdigest()
    assert got == expected


def test_another_key_or_kind_gives_another_pseudonym() -> None:
    same = "DJ01ABC"
    assert Pseudonymiser(KEY)("plate", same) != Pseudonymiser(b"x" * 32)("plate", same)
    assert Pseudonymiser(KEY)("plate", same) != Pseudonymiser(KEY)("card", same)


def test_short_key_and_bad_kind_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        Pseudonymiser(b"short")
    with pytest.raises(ValueError):
        Pseudonymiser(KEY)("", "x")
    assert "k" * 16 not in repr(Pseudonymiser(KEY))


def test_key_from_file_then_env_and_none_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"from-the-file-0123456789\n")
    assert read_key({"secret_file": str(key_file)}, {}) == b"from-the-file-0123456789"
    assert read_key({}, {ENV_FILE: str(key_file)}) == b"from-the-file-0123456789"
    assert read_key({}, {ENV_KEY: "from-the-environment-0123"}) == b"from-the-environment-0123"
    with pytest.raises(ConfigError, match="no pseudonymisation key"):
        read_key({}, {})
    with pytest.raises(ConfigError, match="cannot read"):
        read_key({"secret_file": str(tmp_path / "absent")}, {})


def test_simulate_alone_falls_back_to_the_development_key() -> None:
    assert read_key({}, {}, simulate=True) == DEV_KEY
    assert pseudonymiser({}, {ENV_KEY: "a-real-key-of-enough-bytes"}, simulate=True)("x", "1") \
        != Pseudonymiser(DEV_KEY)("x", "1")
