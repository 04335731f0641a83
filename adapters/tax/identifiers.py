"""Romanian tax identifiers: CNP (personal numeric code) and CUI/CIF (fiscal code). Pure.

CNP, 13 digits S AA LL ZZ JJ NNN C (Ordinul MAI 1/2019, formerly HG 1375/2006):
  S    sex and century: 1/2 1900-1999, 3/4 1800-1899, 5/6 2000-2099, 7/8 foreign residents,
       9 foreigners
  AALLZZ the date of birth; JJ the county (01-46, 51, 52; 47, 48 the former Bucharest sectors
       7 and 8; 70 any county, since 2024); NNN a serial, 001-999
  C    the check digit: sum(digit_i * "279146358279"_i) mod 11, and 10 counts as 1.
CUI, 2 to 10 digits (an "RO" prefix marks a VAT payer), the last a check digit: the others,
  right-aligned on the key "753217532", sum(digit * key) * 10 mod 11, and 10 counts as 0.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from typing import Literal

CNP_KEY = "279146358279"
CUI_KEY = "753217532"
CNP_COUNTIES = frozenset({*range(1, 47), 47, 48, 51, 52, 70})
CENTURY = {"1": 1900, "2": 1900, "3": 1800, "4": 1800, "5": 2000, "6": 2000}
_CUI = re.compile(r"^(?:RO)?\s*(\d{2,10})$", re.IGNORECASE)


class InvalidIdentifier(ValueError):
    """Not a valid CNP or CUI; the message says why, never quoting the number."""


@dataclass(frozen=True)
class TaxId:
    kind: Literal["CNP", "CUI"]
    value: str  # canonical: digits only (a CUI without "RO")


def cnp_check_digit(first12: str) -> int:
    total = sum(int(d) * int(k) for d, k in zip(first12, CNP_KEY, strict=True))
    return 1 if total % 11 == 10 else total % 11


def cui_check_digit(body: str) -> int:
    padded = body.rjust(len(CUI_KEY), "0")
    total = sum(int(d) * int(k) for d, k in zip(padded, CUI_KEY, strict=True))
    check = total * 10 % 11
    return 0 if check == 10 else check


def _valid_birth_date(cnp: str) -> bool:
    month, day = int(cnp[3:5]), int(cnp[5:7])
    if not 1 <= month <= 12:
        return False
    century = CENTURY.get(cnp[0])
    # Residents and foreigners (7, 8, 9) carry no century: allow 29 February.
    year = century + int(cnp[1:3]) if century is not None else 2000
    return 1 <= day <= calendar.monthrange(year, month)[1]


def parse_cnp(text: str) -> TaxId:
    cnp = text.strip()
    if len(cnp) != 13 or not cnp.isdigit() or not cnp.isascii():
        raise InvalidIdentifier("CNP: not 13 digits")
    if cnp[0] == "0":
        raise InvalidIdentifier("CNP: the first digit (sex and century) is 0")
    if not _valid_birth_date(cnp):
        raise InvalidIdentifier("CNP: the date of birth is not a date")
    if int(cnp[7:9]) not in CNP_COUNTIES:
        raise InvalidIdentifier("CNP: no such county code")
    if cnp[9:12] == "000":
        raise InvalidIdentifier("CNP: serial 000")
    if cnp_check_digit(cnp[:12]) != int(cnp[12]):
        raise InvalidIdentifier("CNP: bad check digit")
    return TaxId("CNP", cnp)


def parse_cui(text: str) -> TaxId:
    found = _CUI.match(text.strip())
    if not found or not found.group(1).isascii():
        raise InvalidIdentifier("CUI: not 2 to 10 digits (with an optional RO prefix)")
    digits = found.group(1).lstrip("0")
    if len(digits) < 2:
        raise InvalidIdentifier("CUI: too short")
    if cui_check_digit(digits[:-1]) != int(digits[-1]):
        raise InvalidIdentifier("CUI: bad check digit")
    return TaxId("CUI", digits)


def parse_tax_id(text: str) -> TaxId:
    """A CNP (13 digits) or else a CUI; InvalidIdentifier if it is neither."""
    stripped = text.strip()
    if len(stripped) == 13 and stripped.isdigit():
        return parse_cnp(stripped)
    return parse_cui(stripped)
