"""The value member of each attribute kind, checked (clause 4.5). Pure.

One checker per kind, picked by table lookup. Each returns the value in internal form (vocab
terms expanded, objectList entries as plain URIs, string-encoded geometries decoded) or raises
BadRequestData naming the attribute (`where`) and the fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.entities.geometry import check_geometry
from broker.entities.kinds import DEFAULT_DATASET, NULL
from broker.entities.terms import Terms
from broker.errors import BadRequestData, InternalError

MAX_NAME_LENGTH = 256  # attribute and type names; long enough for any IRI people write
# RFC 3986: a scheme, ":", then no whitespace, control character or character that is never
# literal in a URI. Non-ASCII letters stay allowed: NGSI-LD ids are IRIs (RFC 3987).
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20\x7f<>\"{}|\\^`]+")
# Clause 4.6.2: characters forbidden in names (they break the q language and query strings),
# plus whitespace and control characters.
_FORBIDDEN_NAME_RE = re.compile(r"[<>\"'=;()\s\x00-\x1f\x7f]")
# Clause 4.18: a scope is a "/"-separated path; "#" and "+" are scopeQ wildcards, and the
# characters of _FORBIDDEN_NAME_RE would break query strings.
_SCOPE_RE = re.compile(r"(/[^/#+<>\"'=;()\s\x00-\x1f\x7f]+)+")
# RFC 5646 language tags, loosely (alphanumeric subtags of 1-8), or the JSON-LD @none.
_LANG_TAG_RE = re.compile(r"@none|[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")


def require_uri(value: Any, what: str) -> str:
    """`value` if it is an absolute URI; BadRequestData naming `what` otherwise."""
    if not isinstance(value, str) or not _URI_RE.fullmatch(value):
        raise BadRequestData(f"{what} {value!r} is not a URI")
    return value


def check_name(name: Any, what: str = "attribute") -> str:
    """A name of an attribute, sub-attribute or type (clause 4.6.2), as written."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise BadRequestData(f"Invalid {what} name {name!r}")
    if name.startswith("@"):
        raise BadRequestData(f"{name!r} is a JSON-LD keyword, not an {what} name")
    if _FORBIDDEN_NAME_RE.search(name):
        raise BadRequestData(f"Invalid {what} name {name!r}: names cannot hold whitespace, "
                             "control characters or any of < > \" ' = ; ( )")
    return name


def check_scope(scope: Any) -> str:
    """One scope (clause 4.18), such as /Craiova/Centru."""
    if not isinstance(scope, str) or not _SCOPE_RE.fullmatch(scope):
        raise BadRequestData(f"Invalid scope {scope!r}: scopes are paths like /Craiova/Centru")
    return scope


def check_term(term: Any, what: str) -> str:
    """A term to expand (type, objectType, vocab): a valid name, or a URI if it holds ':'."""
    if isinstance(term, str) and ":" in term:
        return require_uri(term, what)
    return check_name(term, what)


def _terms(value: Any, what: str) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise BadRequestData(f"{what} must be a string or a non-empty list of strings")
    return [check_term(t, what) for t in items]


def expand_terms(value: Any, what: str, terms: Terms) -> Any:
    """A term or list of terms, checked and expanded; one term is a string (as JSON-LD
    compaction would write a list of one), several a list."""
    expanded = list(dict.fromkeys(terms.expand(t) for t in _terms(value, what)))
    return expanded if len(expanded) > 1 else expanded[0]


@dataclass(frozen=True)
class Check:
    """What a checker needs beside the value."""

    where: str  # "Attribute temperature": every error message starts with it
    terms: Terms | None = None  # only VocabProperty needs it, to expand its vocab
    merge: bool = False  # clause 5.5.12: NGSI-LD Nulls inside compound values delete keys


def _nulls_inside(value: Any, merge: bool, in_list: bool = False) -> bool:
    """Whether `value` holds an NGSI-LD Null where it is not allowed (clause 5.5.4): in a
    merge, as the value of a key (it deletes that key); never inside an array, which a merge
    replaces whole."""
    if value == NULL:
        return in_list or not merge
    if isinstance(value, dict):
        return any(_nulls_inside(v, merge, in_list) for v in value.values())
    if isinstance(value, list):
        return any(_nulls_inside(v, merge, True) for v in value)
    return False


def _property(value: Any, c: Check) -> Any:
    if value is None:
        raise BadRequestData(f"{c.where}: a Property value cannot be null")
    if value == NULL or _nulls_inside(value, c.merge):
        raise BadRequestData(f"{c.where}: urn:ngsi-ld:null is only allowed to delete, in a "
                             "merge or partial update (clauses 5.2.1, 5.5.4)")
    return value


def _geo(value: Any, c: Check) -> Any:
    if isinstance(value, str):  # clause 4.7.2: a geometry may come as an encoded JSON string
        try:
            value = json.loads(value)
        except ValueError:
            raise BadRequestData(f"{c.where}: the GeoProperty value is a string that is not "
                                 "a JSON-encoded GeoJSON geometry") from None
    check_geometry(value, c.where)
    return value


def _object(value: Any, c: Check) -> Any:
    if isinstance(value, list):
        if not value:
            raise BadRequestData(f"{c.where}: object must be a URI or a non-empty list of URIs")
        return [require_uri(v, f"{c.where}: object") for v in value]
    return require_uri(value, f"{c.where}: object")


def _object_list(value: Any, c: Check) -> list[str]:
    if not isinstance(value, list):
        raise BadRequestData(f"{c.where}: objectList must be a list of URIs")
    out = []
    for item in value:  # normalized form: [{"object": uri}]; concise: [uri]
        if isinstance(item, dict) and set(item) == {"object"}:
            item = item["object"]
        out.append(require_uri(item, f"{c.where}: objectList entry"))
    return out


def _language_map(value: Any, c: Check) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise BadRequestData(f"{c.where}: languageMap must be a non-empty object mapping "
                             "language tags to strings")
    for tag, text in value.items():
        if not _LANG_TAG_RE.fullmatch(tag):
            raise BadRequestData(f"{c.where}: {tag!r} is not a language tag (RFC 5646)")
        if text == NULL and c.merge:
            continue  # deletes that language (clause 4.5.18)
        if text == NULL or not (isinstance(text, str) or (
                isinstance(text, list) and text and all(isinstance(t, str) for t in text))):
            raise BadRequestData(f"{c.where}: languageMap[{tag!r}] must be a string or a "
                                 "list of strings")
    return value


def _vocab(value: Any, c: Check) -> Any:
    if c.terms is None:
        raise InternalError(f"{c.where}: a vocab checked without terms to expand it")
    return expand_terms(value, f"{c.where}: vocab", c.terms)


def _json(value: Any, c: Check) -> Any:
    if value is None:
        raise BadRequestData(f"{c.where}: json cannot be null")
    return value  # raw JSON: never expanded, never interpreted


def _value_list(value: Any, c: Check) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequestData(f"{c.where}: valueList must be a list")
    if _nulls_inside(value, c.merge, in_list=True):
        raise BadRequestData(f"{c.where}: valueList cannot hold urn:ngsi-ld:null")
    return value


_CHECKS: dict[str, Callable[[Any, Check], Any]] = {
    "Property": _property,
    "GeoProperty": _geo,
    "Relationship": _object,
    "LanguageProperty": _language_map,
    "VocabProperty": _vocab,
    "JsonProperty": _json,
    "ListProperty": _value_list,
    "ListRelationship": _object_list,
}


def check_value(kind: str, value: Any, c: Check) -> Any:
    """The value member of a `kind` attribute in internal form; BadRequestData if invalid."""
    return _CHECKS[kind](value, c)


def check_dataset_id(value: Any, where: str) -> str | None:
    """A datasetId; None for "@none", the default instance named explicitly (clause 4.5.5)."""
    if value == DEFAULT_DATASET:
        return None
    if value == NULL:
        raise BadRequestData(f"{where}: a datasetId cannot be urn:ngsi-ld:null (clause 5.5.8)")
    return require_uri(value, f"{where}: datasetId")
