"""The format checker: what each JSON Schema `format` of the contracts means, checked as such. Pure.

jsonschema's stock checker reads `time` as RFC 3339 full-time (an offset is required), so the
opening hours of Smart Data Models ("08:00", "23:59:00", local times by schema.org's meaning)
would fail; and it leaves `uri`, `duration` and `idn-email` unchecked unless optional packages
are installed, which would make a oneOf over formats (Device's ipAddress) ambiguous. Each format
here is one small function; formats not listed are not checked (JSON Schema 2020-12 §7.2).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import date, datetime

from jsonschema import FormatChecker

# RFC 3339 §5.6 date-time; Python's fromisoformat then rejects impossible dates (2026-02-30).
_DATE_TIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A time of day, local (schema.org Time, ISO 8601 extended) or with an offset; seconds optional.
_TIME_RE = re.compile(
    r"^([01]\d|2[0-3]):[0-5]\d(:([0-5]\d|60)(\.\d+)?)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)?$")
# ISO 8601 §4.4.3.2 duration (the RFC 3339 appendix A grammar, plus fractional seconds):
# at least one component, and a T only when a time component follows.
_DURATION_RE = re.compile(
    r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
# RFC 3986 §3: a scheme, a colon, and no whitespace (NGSI-LD ids are URIs, often URNs).
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
# One @, something on each side, a dot in the domain; RFC 6531 (idn-email) allows any letters.
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def _date_time(value: str) -> bool:
    if not _DATE_TIME_RE.match(value):
        return False
    datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    return True


def _date(value: str) -> bool:
    if not _DATE_RE.match(value):
        return False
    date.fromisoformat(value)
    return True


def _ipv4(value: str) -> bool:
    ipaddress.IPv4Address(value)
    return True


def _ipv6(value: str) -> bool:
    ipaddress.IPv6Address(value)
    return True


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: pattern.match(value) is not None


def _safe(check: Callable[[str], bool]) -> Callable[[str], bool]:
    # jsonschema-rs calls these too, and wants a bool back, never an exception.
    def run(value: str) -> bool:
        try:
            return check(value)
        except ValueError:
            return False
    return run


_CHECKS: dict[str, Callable[[str], bool]] = {
    "date-time": _date_time,
    "date": _date,
    "time": _matches(_TIME_RE),
    "duration": _matches(_DURATION_RE),
    "uri": _matches(_URI_RE),
    "email": _matches(_EMAIL_RE),
    "idn-email": _matches(_EMAIL_RE),
    "ipv4": _ipv4,
    "ipv6": _ipv6,
}
FORMATS: dict[str, Callable[[str], bool]] = {name: _safe(c) for name, c in _CHECKS.items()}


def format_checker() -> FormatChecker:
    """A checker that knows exactly FORMATS; non-string instances pass (JSON Schema §7.1)."""
    checker = FormatChecker(formats=())
    for name, check in FORMATS.items():
        checker.checks(name)(_strings_only(check))
    return checker


def _strings_only(check: Callable[[str], bool]) -> Callable[[object], bool]:
    def run(value: object) -> bool:
        return not isinstance(value, str) or check(value)
    return run
