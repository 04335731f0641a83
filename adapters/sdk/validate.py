"""Check entities as the broker will read them, before they leave the adapter. Pure.

An entity (normalized, with its "@context") is parsed into the broker's internal form by the
broker's own parse_entity, with a TermMap compiled offline from the built-in contexts
(contracts/ld/contextmap.json), then checked by broker.validation.check_entity against the
contracts of its types. So an entity that passes here is one a strict-mode broker accepts, and
the dead-letter file gets the same words the broker would answer with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from adapters.sdk.errors import ConfigError
from broker.entities.clock import now_iso
from broker.entities.parse import parse_entity
from broker.errors import NgsiError
from broker.ld.core import builtin_document
from broker.ld.termmap import TermMap, compile_context
from broker.validation import Contracts, check_entity, contracts


def _objects(context: Any) -> list[Mapping[str, Any]]:
    items = context if isinstance(context, list) else [context]
    out: list[Mapping[str, Any]] = []
    for item in items:
        if isinstance(item, dict):
            out.append(item)
            continue
        document = builtin_document(str(item))
        if document is None:
            raise ConfigError(f"@context {item} is not built in (contracts/ld/contextmap.json):"
                              f" the adapter cannot validate offline")
        out.extend(_objects(document["@context"]))
    return out


@cache
def _terms(key: str) -> TermMap:
    return compile_context(_objects(json.loads(key)))


def terms_for(context: Any) -> TermMap:
    """The compiled @context (URLs of built-in contexts, inline objects, or a list of both)."""
    return _terms(json.dumps(context, sort_keys=True))


def problems(entity: Mapping[str, Any], *, known: Contracts | None = None) -> list[str]:
    """Why the broker would refuse `entity` (it carries its "@context"); [] if it would not."""
    body = {k: v for k, v in entity.items() if k != "@context"}
    try:
        internal = parse_entity(body, terms_for(entity.get("@context")), now_iso())
    except NgsiError as error:
        return [error.detail or error.title]
    return [f"{f.type}: {f.message}" for f in check_entity(internal, known or contracts())]
