"""The language filter (clause 4.15): which entry of a LanguageProperty to return. Pure.

The `lang` parameter reads like an HTTP Accept-Language header (RFC 9110 12.5.4): language
ranges, "*" for any, optional q weights. A range matches a tag equal to it or more specific
than it ("en" matches "en-GB", RFC 4647 basic filtering); failing every range, a range cut
back subtag by subtag matches ("fr-CH" finds "fr", RFC 4647 lookup); failing that, the "@none"
entry, then the first entry.
"""

from __future__ import annotations

from typing import Any

ANY = "*"
NO_LANGUAGE = "@none"


def _weight(q: str) -> float:
    try:
        weight = float(q)
    except ValueError:
        return 0.0
    return weight if 0.0 <= weight <= 1.0 else 0.0


def language_ranges(lang: str) -> list[str]:
    """The ranges of a lang parameter in preference order ("ro,en;q=0.5"); q=0 excludes."""
    weighted = []
    for index, part in enumerate(lang.split(",")):
        tag, _, params = part.partition(";")
        q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
        weight = _weight(q)
        if tag.strip() and weight > 0:
            weighted.append((-weight, index, tag.strip().lower()))
    return [tag for _, _, tag in sorted(weighted)]


def _filter(ranges: list[str], tags: list[str]) -> str | None:
    for wanted in ranges:
        for tag in tags:
            low = tag.lower()
            if wanted == ANY or low == wanted or low.startswith(wanted + "-"):
                return tag
    return None


def _lookup(ranges: list[str], tags: list[str]) -> str | None:
    by_lower = {tag.lower(): tag for tag in tags}
    for wanted in ranges:
        parts = wanted.split("-")
        for size in range(len(parts) - 1, 0, -1):
            found = by_lower.get("-".join(parts[:size]))
            if found is not None:
                return found
    return None


def pick_language(language_map: dict[str, Any], lang: str) -> tuple[str, Any]:
    """The (tag, text) of a languageMap best matching `lang` (clause 4.15)."""
    ranges = language_ranges(lang)
    tags = [t for t in language_map if t != NO_LANGUAGE]
    tag = _filter(ranges, tags) or _lookup(ranges, tags)
    if tag is None:
        tag = NO_LANGUAGE if NO_LANGUAGE in language_map else next(iter(language_map))
    return tag, language_map[tag]
