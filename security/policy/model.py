"""The shapes of the policy layer: a compiled policy, the resource asked about, the decision.

Policies are written as YAML in contracts/policies/ (docs/policies.md) and compiled by
`security.policy.load` into a `Policy`: rules with every name resolved to IRIs, indexed by
(action, role), plus the personal-data class of every attribute from the contracts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Effect = Literal["allow", "deny", "mask", "pseudonymise"]
Class = Literal["none", "pseudonymous", "personal", "special"]

ENTITY_ACTIONS = ("read", "create", "update", "delete", "subscribe", "query-history")
API_ACTIONS = ("administer", "read")
ACTIONS = frozenset(ENTITY_ACTIONS) | frozenset(API_ACTIONS)
# Actions that disclose data: personal and special attributes need a purpose-bound grant for
# them (GDPR art. 25(2): by default, personal data not made accessible without intervention).
DISCLOSING = frozenset({"read", "subscribe", "query-history"})
WRITES = frozenset({"create", "update", "delete"})
CLASSES: tuple[Class, ...] = ("none", "pseudonymous", "personal", "special")
PURPOSE_BOUND = frozenset({"personal", "special"})
GRANTS = frozenset({"allow", "pseudonymise"})
# The precedence of effects on one attribute (deny-overrides, as XACML 3.0 §C.2): the
# strongest effect among the matching rules wins, whatever their order or specificity.
PRECEDENCE: Mapping[str, int] = {"allow": 0, "pseudonymise": 1, "mask": 2, "deny": 3}
DEFAULT_TENANT = "@default"  # how policy files name the default tenant ("" in the broker)
ANY = "*"
DEFAULT_DENY = "default-deny"  # the pseudo rule id of privacy by default
PURPOSE_HEADER = "Cetate-Purpose"  # where a request declares its purpose of processing


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule, compiled: names resolved to IRIs; None means "any"."""

    id: str
    description: str
    source: str  # the file it came from
    effect: Effect
    roles: frozenset[str]  # may hold "*"
    actions: frozenset[str]
    tenants: frozenset[str] | None
    purposes: frozenset[str] | None
    types: frozenset[str] | None  # entity type IRIs; None: every type
    resources: frozenset[str] | None  # API resources; set only on API rules
    attributes: frozenset[str] | None  # attribute IRIs
    classes: frozenset[str] | None
    written_types: tuple[str, ...] = ()  # as the file wrote them, for explanations and reports

    @property
    def whole(self) -> bool:
        """True when the rule is about whole entities, not some of their attributes."""
        return self.attributes is None and self.classes is None

    def covers(self, iri: str | None, cls: str) -> bool:
        if self.attributes is None and self.classes is None:
            return True
        return ((self.classes is not None and cls in self.classes)
                or (iri is not None and self.attributes is not None and iri in self.attributes))

    def discloses(self, cls: str, action: str) -> bool:
        """Whether this grant may disclose an attribute of `cls` for `action`: personal and
        special data only through a rule that names its purposes (privacy by default)."""
        return cls not in PURPOSE_BOUND or action not in DISCLOSING or self.purposes is not None


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """What the contracts say about one entity type, keyed by IRI."""

    name: str
    iri: str
    classes: Mapping[str, str]  # attribute IRI -> personal-data class
    names: Mapping[str, str]  # attribute IRI -> short name


@dataclass(frozen=True, slots=True)
class Resource:
    """What a request acts on: entities of some types in a tenant (optionally some of their
    attributes, by IRI), or an API resource such as `audit`."""

    tenant: str = ""
    types: tuple[str, ...] = ()  # expanded type IRIs
    attributes: frozenset[str] | None = None  # None: whatever the entities hold
    api: str | None = None

    @classmethod
    def entity(cls, types: Iterable[str], tenant: str = "",
               attributes: Iterable[str] | None = None) -> Resource:
        return cls(tenant=tenant, types=tuple(types),
                   attributes=None if attributes is None else frozenset(attributes))

    @classmethod
    def of_api(cls, name: str, tenant: str = "") -> Resource:
        return cls(tenant=tenant, api=name)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one (principal, action, resource, purpose).

    For entities, every attribute IRI gets one effect: in `masked` (left out), in
    `pseudonymised` (value replaced by a keyed hash), in `visible`, or else `unclassified`
    (attributes the contracts do not list for the types, e.g. of a type with no contract)."""

    allowed: bool
    rules: tuple[str, ...]  # the deciding rule id(s)
    reason: str
    masked: frozenset[str] = frozenset()
    pseudonymised: frozenset[str] = frozenset()
    visible: frozenset[str] = frozenset()
    unclassified: Effect = "mask"

    def effect(self, iri: str) -> Effect:
        if iri in self.visible:
            return "allow"
        if iri in self.masked:
            return "mask"
        if iri in self.pseudonymised:
            return "pseudonymise"
        return self.unclassified

    @property
    def filters(self) -> bool:
        """Whether entities need filtering at all (False: pass them through as they are)."""
        return bool(self.masked or self.pseudonymised) or self.unclassified != "allow"


@dataclass
class Policy:
    """A compiled policy: every file of one directory, checked against the contracts."""

    rules: tuple[Rule, ...]
    roles: Mapping[str, str]
    purposes: Mapping[str, str]
    resources: Mapping[str, str]
    unclassified: str
    types: Mapping[str, TypeInfo]  # type IRI -> contract facts
    sources: tuple[str, ...] = ()
    index: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    cache: dict[Any, Decision] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], list[Rule]] = {}
        for rule in self.rules:
            for action in rule.actions:
                for role in rule.roles:
                    index.setdefault((action, role), []).append(rule)
        self.index = {key: tuple(rules) for key, rules in index.items()}
        self.order = {rule.id: n for n, rule in enumerate(self.rules)}

    def candidates(self, roles: Iterable[str], action: str) -> list[Rule]:
        """The rules of any of `roles` (or of every role) for `action`, in file order."""
        found: dict[str, Rule] = {}
        for role in (*roles, ANY):
            for rule in self.index.get((action, role), ()):
                found.setdefault(rule.id, rule)
        return sorted(found.values(), key=lambda r: self.order[r.id])

    def type_iri(self, name_or_iri: str) -> str:
        """A contract's type IRI from its short name; an IRI as it is."""
        if ":" in name_or_iri:
            return name_or_iri
        for info in self.types.values():
            if info.name == name_or_iri:
                return info.iri
        raise KeyError(f"no contract for type {name_or_iri}")

    def attribute_iri(self, type_iri: str, name_or_iri: str) -> str:
        """An attribute's IRI from its short name in a type's contract; an IRI as it is."""
        if ":" in name_or_iri:
            return name_or_iri
        info = self.types.get(type_iri)
        if info is not None:
            for iri, name in info.names.items():
                if name == name_or_iri:
                    return iri
        raise KeyError(f"type {type_iri} has no attribute {name_or_iri} in its contract")

    def type_name(self, iri: str) -> str:
        info = self.types.get(iri)
        return info.name if info else iri

    def class_of(self, type_iri: str, attribute_iri: str | None) -> str:
        info = self.types.get(type_iri)
        if info is None or attribute_iri is None:
            return self.unclassified
        return info.classes.get(attribute_iri, self.unclassified)
