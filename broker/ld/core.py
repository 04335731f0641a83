"""The built-in contexts: the NGSI-LD core @context (shipped in contracts/ld/), what it embeds,
and the contexts of the contract types (Smart Data Models subjects, Cetate's own).

Every published spelling of the core context URL resolves here without a fetch, so the broker
works offline (architecture invariant 7) and clients that still send an older version keep
working: the terms of v1.3 ... v1.8 are all in v1.9, so v1.9 answers for every version.
The other local contexts are data: contracts/ld/contextmap.json maps each URL (both the
smart-data-models.github.io and the raw.githubusercontent.com spellings) to a file, so adding
a subject is a data change (invariant 5).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
CORE_FILE = "ngsi-ld-core-context-v1.9.jsonld"
CONTEXT_MAP_FILE = "contextmap.json"
# Cetate's own namespace: the terms of the types no Smart Data Model covers (contracts/types/).
CETATE_NAMESPACE = "https://cetate.city/ns/"
CETATE_CONTEXT_URL = CETATE_NAMESPACE + "context.jsonld"

_CORE_BASE = "uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context"
# The versions published under uri.etsi.org/ngsi-ld/v1/ (clause 5.5.7 names the unversioned
# one; each release of GS CIM 009 since 1.3 added a versioned file).
_CORE_VERSIONS = ("", "-v1.3", "-v1.4", "-v1.5", "-v1.6", "-v1.7", "-v1.8", "-v1.9")
CORE_CONTEXT_URLS = frozenset(
    f"{scheme}://{_CORE_BASE}{version}.jsonld"
    for scheme in ("https", "http")
    for version in _CORE_VERSIONS
)

# URL -> file in contracts/ld/ of every context served from the package.
BUILTIN_FILES: dict[str, str] = {
    **{url: CORE_FILE for url in CORE_CONTEXT_URLS},
    # Referenced by the core context's "ngsildproof" term (clause 4.18, signed entities).
    "https://w3id.org/security/data-integrity/v2": "w3id-security-data-integrity-v2.jsonld",
    "http://w3id.org/security/data-integrity/v2": "w3id-security-data-integrity-v2.jsonld",
}


class MissingContracts(RuntimeError):
    """contracts/ is not beside the broker package: the installation is broken."""


def is_core_context_url(url: str) -> bool:
    return url.strip() in CORE_CONTEXT_URLS


def is_builtin_url(url: str) -> bool:
    return url.strip() in builtin_files()


@cache
def builtin_files() -> dict[str, str]:
    """Every URL served from contracts/ld/: the core ones and the table of local contexts."""
    table = _load(CONTEXT_MAP_FILE)
    if not isinstance(table, dict):
        raise MissingContracts(f"{CONTRACTS / 'ld' / CONTEXT_MAP_FILE} is not a JSON object")
    local = {url: name for url, name in table.items()
             if not url.startswith("_") and isinstance(name, str)}
    return {**local, **BUILTIN_FILES}


@cache
def _load(name: str) -> Any:
    path = CONTRACTS / "ld" / name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MissingContracts(
            f"Built-in @context {path} is missing: contracts/ must sit beside broker/ "
            "(install the project from its source tree, e.g. pip install -e .)") from None
    return orjson.loads(raw)


def core_document() -> dict[str, Any]:
    """The core context document ({"@context": {...}}), read once."""
    doc = _load(CORE_FILE)
    if not isinstance(doc, dict) or not isinstance(doc.get("@context"), dict):
        raise MissingContracts(f"{CONTRACTS / 'ld' / CORE_FILE} is not a JSON-LD context")
    return doc


def builtin_document(url: str) -> Any | None:
    """The document behind a built-in context URL, or None if the URL is not built in."""
    name = builtin_files().get(url.strip())
    return _load(name) if name else None
