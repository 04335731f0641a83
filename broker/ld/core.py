"""The built-in contexts: the NGSI-LD core @context (shipped in contracts/ld/) and what it embeds.

Every published spelling of the core context URL resolves here without a fetch, so the broker
works offline and clients that still send older versions (v1.3 ... v1.8) keep working.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import orjson

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"

# The unversioned URL and every versioned one (clause 5.5.7 / annex B), over http or https.
_CORE_URL_RE = re.compile(
    r"^https?://uri\.etsi\.org/ngsi-ld/v1/ngsi-ld-core-context(?:-v1\.[0-9]+(?:\.[0-9]+)?)?\.jsonld$"
)

# Other contexts the core one refers to, shipped beside it.
_LOCAL_FILES = {
    "https://w3id.org/security/data-integrity/v2": "w3id-security-data-integrity-v2.jsonld",
}


def is_core_context_url(url: str) -> bool:
    return bool(_CORE_URL_RE.match(url.strip()))


def _load(name: str) -> Any:
    path = CONTRACTS / "ld" / name
    if not path.exists():
        raise RuntimeError(f"Built-in context {path} is missing: is contracts/ beside broker/?")
    return orjson.loads(path.read_bytes())


@cache
def core_document() -> dict[str, Any]:
    """The core context document ({"@context": {...}})."""
    doc = _load("ngsi-ld-core-context-v1.9.jsonld")
    assert isinstance(doc, dict)
    return doc


def builtin_document(url: str) -> Any | None:
    """The document behind a built-in context URL, or None if the URL is not built in."""
    if is_core_context_url(url):
        return core_document()
    name = _LOCAL_FILES.get(url.strip())
    return _load(name) if name else None
