"""The entity-type contracts of contracts/types/, loaded once per process.

A contract names a type's JSON Schema (of the keyValues form), its @context, the personal-data
class of each attribute, a default retention and a lawful basis (docs/contracts.md). Loading
reads the files, applies the contract's schemaPatches (RFC 6902) to a copy of the upstream
schema, resolves every $ref offline through contracts/schemas/refmap.json, and compiles the
validator and the type's term map; nothing is read again afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from broker.ld.core import CONTRACTS, MissingContracts, builtin_document
from broker.ld.termmap import TermMap, compile_context
from broker.validation.formats import FORMATS, format_checker

PersonalData = Literal["none", "pseudonymous", "personal", "special"]
TYPES_DIR = "types"
SCHEMAS_DIR = "schemas"
REFMAP_FILE = "refmap.json"
CONTRACT_SCHEMA_FILE = "contract.schema.json"


class ContractError(MissingContracts):
    """A contract file is malformed or names what does not exist."""


@dataclass(frozen=True)
class Attribute:
    personal_data: PersonalData
    kind: str | None = None  # NGSI-LD kind to publish it as; None for id and type
    note: str | None = None


@dataclass(frozen=True)
class TypeContract:
    """One entity type's contract, compiled."""

    name: str
    type_iri: str
    schema_path: str
    context: str
    retention: str  # ISO 8601 duration
    lawful_basis: str
    additional_attributes: bool
    attributes: Mapping[str, Attribute]
    validator: Validator  # jsonschema: the errors, with paths, when an entity fails
    is_valid: Callable[[Any], bool]  # jsonschema-rs, ~100x faster: the common, valid case
    terms: TermMap  # the type's @context (plus the core one): keyValues names match the schema

    def by_iri(self) -> dict[str, Attribute]:
        """The attributes keyed by expanded IRI, as the internal entity form names them."""
        return {self.terms.expand(name): a for name, a in self.attributes.items()
                if name not in ("id", "type")}

    def personal_data(self, attribute: str) -> PersonalData | None:
        """The class of an attribute, or None if the contract does not list it."""
        found = self.attributes.get(attribute)
        return found.personal_data if found else None


def _read(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ContractError(f"{path} is missing") from None
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"{path} is not JSON: {exc}") from None


def _referenced(root: Path) -> dict[str, Any]:
    """Every schema a contract may $ref, by its URL, read from contracts/schemas/."""
    refmap = _read(root / SCHEMAS_DIR / REFMAP_FILE)
    return {url: _read(root / SCHEMAS_DIR / name)
            for url, name in refmap.items() if not url.startswith("_")}


def _registry(documents: Mapping[str, Any]) -> Registry[Any]:
    return Registry().with_resources(
        (url, Resource.from_contents(doc, default_specification=DRAFT202012))
        for url, doc in documents.items())


def _retriever(documents: Mapping[str, Any]) -> Callable[[str], Any]:
    def retrieve(uri: str) -> Any:
        found = documents.get(uri.partition("#")[0])
        if found is None:  # never fetched: the contracts work offline (invariant 7)
            raise ContractError(f"$ref {uri} is not in contracts/schemas/{REFMAP_FILE}")
        return found
    return retrieve


def _step(node: Any, part: str) -> Any:
    return node[int(part)] if isinstance(node, list) else node[part]


def _apply(node: Any, op: str, last: str, value: Any) -> None:
    if isinstance(node, list):
        index = int(last)
        if op == "add":
            node.insert(index, value)
        elif op == "replace":
            node[index] = value
        else:
            del node[index]
    elif op == "remove":
        del node[last]
    elif op == "replace" and last not in node:
        raise KeyError(last)  # RFC 6902 §4.3: the target must exist
    else:
        node[last] = value


def apply_patches(schema: Any, patches: list[dict[str, Any]]) -> Any:
    """A copy of `schema` with RFC 6902 add/replace/remove operations applied."""
    schema = copy.deepcopy(schema)
    for patch in patches:
        # RFC 6901 §4: ~1 is "/", ~0 is "~".
        *parents, last = [p.replace("~1", "/").replace("~0", "~")
                          for p in patch["path"].split("/")[1:]]
        try:
            node = schema
            for part in parents:
                node = _step(node, part)
            _apply(node, patch["op"], last, patch.get("value"))
        except (KeyError, IndexError, ValueError, TypeError):
            raise ContractError(
                f"schema patch {patch['op']} {patch['path']} does not apply") from None
    return schema


def _context_objects(url: str) -> list[Mapping[str, Any]]:
    document = builtin_document(url)
    if document is None:
        raise ContractError(f"@context {url} is not in contracts/ld/contextmap.json")
    context = document["@context"]
    items = context if isinstance(context, list) else [context]
    out: list[Mapping[str, Any]] = []
    for item in items:
        out.extend(_context_objects(item) if isinstance(item, str) else [item])
    return out


@cache
def _terms(url: str) -> TermMap:
    """The compiled context of a type; one per subject, shared by its types."""
    return compile_context(_context_objects(url))


def _compile(raw: Mapping[str, Any], root: Path, documents: Mapping[str, Any],
             registry: Registry[Any]) -> TypeContract:
    schema = _read(root / raw["schema"])
    schema = apply_patches(schema, raw.get("schemaPatches", []))
    validator = Draft202012Validator(schema, registry=registry, format_checker=format_checker())
    fast = jsonschema_rs.Draft202012Validator(
        schema, formats=FORMATS, validate_formats=True, retriever=_retriever(documents))
    return TypeContract(
        name=raw["type"],
        type_iri=raw["typeIri"],
        schema_path=raw["schema"],
        context=raw["context"],
        retention=raw["retention"],
        lawful_basis=raw["lawfulBasis"],
        additional_attributes=raw.get("additionalAttributes", False),
        attributes=MappingProxyType({
            name: Attribute(a["personalData"], a.get("kind"), a.get("note"))
            for name, a in raw["attributes"].items()}),
        validator=validator,
        is_valid=fast.is_valid,
        terms=_terms(raw["context"]),
    )


class Contracts(Mapping[str, TypeContract]):
    """The contracts by expanded type IRI; also looked up by short name with `named`."""

    def __init__(self, contracts: list[TypeContract]) -> None:
        self._by_iri = {c.type_iri: c for c in contracts}
        self._by_name = {c.name: c for c in contracts}

    def __getitem__(self, iri: str) -> TypeContract:
        return self._by_iri[iri]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_iri)

    def __len__(self) -> int:
        return len(self._by_iri)

    def named(self, name: str) -> TypeContract:
        return self._by_name[name]

    def names(self) -> list[str]:
        return sorted(self._by_name)


def load_contracts(root: Path = CONTRACTS) -> Contracts:
    """Read and compile every contracts/types/*.json under `root`."""
    documents = _referenced(root)
    registry = _registry(documents)
    meta = Draft202012Validator(_read(root / CONTRACT_SCHEMA_FILE),
                                format_checker=format_checker())
    compiled = []
    for path in sorted((root / TYPES_DIR).glob("*.json")):
        raw = _read(path)
        problems = sorted(meta.iter_errors(raw), key=lambda e: list(e.absolute_path))
        if problems:
            where = "/".join(str(p) for p in problems[0].absolute_path) or "(top)"
            raise ContractError(f"{path}: {where}: {problems[0].message}")
        if path.stem != raw["type"]:
            raise ContractError(f"{path} describes type {raw['type']}: name it after the type")
        compiled.append(_compile(raw, root, documents, registry))
    if len({c.type_iri for c in compiled}) != len(compiled):
        raise ContractError("two contracts in contracts/types/ share one typeIri")
    return Contracts(compiled)


@cache
def contracts() -> Contracts:
    """The shipped contracts, loaded on first use."""
    return load_contracts()
