"""What a dead letter may keep of a raw vendor record: direct identifiers masked. Pure.

A dead letter lands in a file on the adapter's host, read by whoever debugs the mapping: it
must not become a second copy of the city's CNPs, card UIDs or plates (GDPR art. 5(1)(c), data
minimisation; ARCHITECTURE.md invariant 6). The source keeps the original, and the dead letter's
stream and position say where to find it.

    Adapter.redact = lambda self, raw: mask_fields(raw.data, {"card_uid"})
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

MASK = "<masked>"


def _json_member(name: str) -> re.Pattern[str]:
    # "name": "value" or "name": 123 inside a JSON text that could not be decoded
    return re.compile(r'("' + re.escape(name) + r'"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)')


def mask_fields(data: Any, names: Collection[str], patterns: Collection[re.Pattern[str]] = ()
                ) -> Any:
    """A copy of `data` with the members called `names` masked, at any depth of dicts and
    lists; in text (a line that was not valid JSON), those JSON members and whatever the
    `patterns` match (e.g. a 13-digit CNP) are masked too."""
    if isinstance(data, dict):
        return {k: MASK if k in names else mask_fields(v, names, patterns)
                for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [mask_fields(v, names, patterns) for v in data]
    if isinstance(data, bytes):
        data = data.decode("utf-8", "backslashreplace")
    if isinstance(data, str):
        for name in names:
            data = _json_member(name).sub(lambda m: m.group(1) + f'"{MASK}"', data)
        for pattern in patterns:
            data = pattern.sub(MASK, data)
    return data
