"""Query-string parameters shared by the entity endpoints (clause 6.3.7, 5.7.1). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from broker.errors import BadRequestData

FORMATS = ("normalized", "concise", "keyValues")
# Every option value the specification defines (clause 6.3.7); others are a BadRequestData.
KNOWN_OPTIONS = frozenset(
    {"normalized", "concise", "keyValues", "sysAttrs", "noOverwrite", "replace", "update",
     "append", "temporalValues", "aggregatedValues", "splitEntities"}
)


def csv(params: Mapping[str, str], name: str) -> list[str] | None:
    """A comma-separated parameter as a list (None if absent; empty items are an error)."""
    raw = params.get(name)
    if raw is None:
        return None
    items = [item.strip() for item in raw.split(",")]
    if not raw.strip() or any(not item for item in items):
        raise BadRequestData(f"Parameter {name} must be a non-empty comma-separated list")
    return items


def options(params: Mapping[str, str]) -> frozenset[str]:
    values = frozenset(csv(params, "options") or ())
    unknown = values - KNOWN_OPTIONS
    if unknown:
        raise BadRequestData(f"Unknown options value(s): {', '.join(sorted(unknown))}")
    return values


@dataclass(frozen=True)
class Representation:
    """How to represent entities in a response (format, sysAttrs)."""

    format: str = "normalized"
    sys_attrs: bool = False


def representation(params: Mapping[str, str]) -> Representation:
    """format= wins over options= (clause 6.3.7); two formats in options is ambiguous."""
    opts = options(params)
    chosen = [f for f in FORMATS if f in opts]
    fmt = params.get("format")
    if fmt is not None:
        if fmt not in FORMATS:
            raise BadRequestData(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        chosen = [fmt]
    if len(chosen) > 1:
        raise BadRequestData(f"Conflicting representation options: {', '.join(chosen)}")
    return Representation(chosen[0] if chosen else "normalized", "sysAttrs" in opts)


def flag(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise BadRequestData(f"Parameter {name} must be true or false")
    return raw == "true"
