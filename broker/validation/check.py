"""Validation of an entity against the contracts of its types. Pure.

The contract schemas describe the keyValues form, with the short names of the type's own
@context. So the entity (internal form, expanded IRIs) is reduced to keyValues compacted with
that context, then checked by the compiled JSON Schema; multi-instance attributes are checked
one instance at a time. Messages name the attribute and the rule broken, and quote the value
only of attributes the contract classifies as holding no personal data (a rejected CNP must not
end up in a log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import best_match

from broker.validation.contracts import Contracts, TypeContract

Entity = Mapping[str, Any]
Instance = Mapping[str, Any]

MAX_MESSAGE = 200  # characters of one failure's message: a huge value is not worth echoing
# Entity members the NGSI-LD core gives every entity (clauses 4.7, 4.18): never "unknown".
CORE_MEMBERS = frozenset({"id", "type", "scope", "location", "observationSpace",
                          "operationSpace"})
PREFERRED_LANGUAGE = "ro"  # which string of a LanguageProperty stands for it in the check


@dataclass(frozen=True)
class Failure:
    """One broken rule: the attribute (short name; "" for the entity), the JSON Schema keyword
    or contract rule, and a message for people."""

    type: str
    attribute: str
    rule: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"type": self.type, "attribute": self.attribute, "rule": self.rule,
                "message": self.message}


def _language(inst: Instance) -> Any:
    strings = inst["languageMap"]
    chosen = strings.get(PREFERRED_LANGUAGE, next(iter(strings.values()), ""))
    return chosen[0] if isinstance(chosen, list) and chosen else chosen


def _plain(value: Any) -> Any:
    # A JSON-LD value object ({"@type": "DateTime", "@value": "..."}) stands for its @value.
    if isinstance(value, dict) and "@value" in value and set(value) <= {"@value", "@type"}:
        return value["@value"]
    return value


def _vocab(terms: Any) -> Callable[[Instance], Any]:
    def simplify(inst: Instance) -> Any:
        vocab = inst["vocab"]
        if isinstance(vocab, list):
            return [terms.compact(v) for v in vocab]
        return terms.compact(vocab)
    return simplify


# Clause 4.5.4 simplified form, by kind; kinds that keyValues keeps wrapped are unwrapped here,
# since the schemas describe the bare value.
_SIMPLE: dict[str, Callable[[Instance], Any]] = {
    "Property": lambda i: _plain(i["value"]),
    "GeoProperty": lambda i: i["value"],
    "Relationship": lambda i: i["object"],
    "LanguageProperty": _language,
    "JsonProperty": lambda i: i["json"],
    "ListProperty": lambda i: i["valueList"],
    "ListRelationship": lambda i: i["objectList"],
}


def key_values(entity: Entity, contract: TypeContract) -> tuple[dict[str, Any],
                                                                list[tuple[str, Any]]]:
    """The entity as the contract's schema sees it, and the further instances of
    multi-attributes (name, value) to check one by one."""
    terms = contract.terms
    simple = {**_SIMPLE, "VocabProperty": _vocab(terms)}
    doc: dict[str, Any] = {"id": entity["id"], "type": contract.name}
    if entity.get("scope"):
        doc["scope"] = entity["scope"]
    extra: list[tuple[str, Any]] = []
    for iri, instances in entity["attrs"].items():
        if not instances:
            continue
        name = terms.compact(iri)
        doc[name] = simple[instances[0]["type"]](instances[0])
        extra.extend((name, simple[i["type"]](i)) for i in instances[1:])
    return doc, extra


def _attribute_of(error: ValidationError) -> str:
    if error.path:
        return str(error.path[0])
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        return str(missing[0]) if missing else ""
    return ""


def _message(error: ValidationError, attribute: str, contract: TypeContract) -> tuple[str, str]:
    """(rule, message) of the most telling error under `error` (anyOf/oneOf pick one)."""
    deepest = best_match(error.context) if error.context else error
    deepest = deepest or error
    rule = str(deepest.validator)
    level = contract.personal_data(attribute)
    if level in (None, "none") or rule == "required":
        text = deepest.message
    else:  # personal data: say what rule, never what value
        text = f"the value breaks {rule} {_constraint(deepest)}".rstrip()
    inner = "/".join(str(p) for p in list(deepest.absolute_path)[1:])
    where = f"{attribute}/{inner}" if inner else attribute
    text = f"{where}: {text}" if where else text
    return rule, text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


def _constraint(error: ValidationError) -> str:
    value = error.validator_value
    if isinstance(value, (str, int, float, bool)):
        return repr(value)
    return ""


def _schema_failures(contract: TypeContract, doc: Mapping[str, Any],
                     only: str | None = None) -> list[Failure]:
    out = []
    for error in contract.validator.iter_errors(doc):
        attribute = _attribute_of(error)
        if only is not None and attribute != only:
            continue
        rule, message = _message(error, attribute, contract)
        out.append(Failure(contract.name, attribute, rule, message))
    return out


def check_key_values(doc: Mapping[str, Any], contract: TypeContract,
                     extra: Iterable[tuple[str, Any]] = (),
                     also_allowed: Iterable[str] = ()) -> list[Failure]:
    """Every way a keyValues document breaks `contract`; [] if it keeps it. `extra`: further
    instances of multi-attributes; `also_allowed`: names (as `doc` spells them) that other
    contracts of the same entity declare."""
    failures = [] if contract.is_valid(doc) else _schema_failures(contract, doc)
    for name, value in extra:
        variant = {**doc, name: value}
        if not contract.is_valid(variant):
            failures.extend(_schema_failures(contract, variant, only=name))
    if not contract.additional_attributes:
        allowed = frozenset(also_allowed)
        for name in doc:
            if name not in contract.attributes and name not in CORE_MEMBERS \
                    and name not in allowed:
                failures.append(Failure(
                    contract.name, name, "additionalAttributes",
                    f"{name}: not an attribute of {contract.name} (contracts/types/"
                    f"{contract.name}.json lists them; is it misspelt, or the @context "
                    f"missing?)"))
    return sorted(set(failures), key=lambda f: (f.attribute, f.rule, f.message))


def check_contract(entity: Entity, contract: TypeContract,
                   also_declared: frozenset[str] = frozenset()) -> list[Failure]:
    """Every way `entity` (internal form) breaks `contract`; [] if it keeps it.
    `also_declared`: attribute IRIs that other contracts of the entity declare."""
    doc, extra = key_values(entity, contract)
    allowed = [contract.terms.compact(iri) for iri in entity["attrs"] if iri in also_declared]
    return check_key_values(doc, contract, extra, allowed)


def known_contracts(entity: Entity, contracts: Contracts) -> list[TypeContract]:
    return [contracts[t] for t in entity["type"] if t in contracts]


def check_entity(entity: Entity, contracts: Contracts, *, closed: bool = False) -> list[Failure]:
    """Every way `entity` breaks the contracts of its types. With `closed`, an entity none of
    whose types has a contract fails too."""
    known = known_contracts(entity, contracts)
    if not known:
        if not closed:
            return []
        names = ", ".join(entity["type"])
        return [Failure(names, "type", "contract",
                        f"type: no contract in contracts/types/ for {names}, and this tenant "
                        f"accepts only contract types")]
    declared = frozenset(c.terms.expand(name) for c in known for name in c.attributes) \
        if len(known) > 1 else frozenset()
    failures: list[Failure] = []
    for contract in known:
        failures.extend(check_contract(entity, contract, declared))
    return failures


def describe(entity_id: str, failures: list[Failure]) -> str:
    """One line for a BadRequestData detail."""
    types = sorted({f.type for f in failures})
    return (f"Entity {entity_id} breaks the contract of {', '.join(types)}: "
            + "; ".join(f"{f.message} [{f.rule}]" for f in failures))

