"""The default policies of contracts/policies/, as a decision table: every default role x
purpose (and none) x group of types x tenant, for reads; then the issue's stated outcomes as
tests of their own."""

from __future__ import annotations

import pytest

from security.identity.principal import PUBLIC, Principal
from security.policy import Policy, Resource, decide, load_policy
from security.policy.model import CLASSES

ROLES = ("public", "admin", "adapter", "city-it", "tax-officer", "transport-operator",
         "auditor", "dpo")
PURPOSES = (None, "tax-collection", "transport-operations", "parking-enforcement",
            "city-operations", "open-data", "audit")
GROUPS = {
    "lighting": ("Streetlight", "StreetlightControlCabinet", "StreetlightGroup",
                 "StreetlightModel"),
    "parking": ("ParkingSpot", "ParkingGroup", "ParkingAccess", "OnStreetParking",
                "OffStreetParking"),
    "parking-session": ("ParkingSession",),
    "network": ("GtfsAgency", "GtfsRoute", "GtfsStop", "GtfsTrip", "PublicTransportStop",
                "FareProduct", "CrowdFlowObserved"),
    "vehicle": ("Vehicle",),
    "validation": ("TicketValidation",),
    "card": ("TransitCard",),
    "tax": ("Taxpayer", "TaxObligation", "TaxPayment"),
    "device": ("Device",),
    "person": ("Person",),
    "other": ("Cost", "Organization", "PublicService"),
}
TAX_TYPES = GROUPS["tax"]

DENIED = ""
N, NP, NPX, ALL = "n", "np", "npx", "npxs"  # classes seen: none, pseudonymous, personal, special
LETTER = {"none": "n", "pseudonymous": "p", "personal": "x", "special": "s"}

OPEN = {"lighting": N, "parking": N, "network": N}  # open data: every role, default tenant
EVERYTHING_NP = dict.fromkeys(GROUPS, NP)
ADAPTER = {g: NP for g in ("lighting", "parking", "parking-session", "network", "vehicle",
                           "validation", "card", "device")}

# (role, tenant) -> group -> classes seen, whatever the purpose ...
BASE: dict[tuple[str, str], dict[str, str]] = {
    **{(role, ""): OPEN for role in ROLES},
    ("admin", ""): EVERYTHING_NP, ("admin", "tax"): EVERYTHING_NP,
    ("city-it", ""): EVERYTHING_NP, ("city-it", "tax"): EVERYTHING_NP,
    ("adapter", ""): ADAPTER, ("adapter", "tax"): ADAPTER,
}
# ... and what a declared purpose adds: (role, tenant, purpose) -> group -> classes seen.
CITY_OPS = {"lighting": NPX, "parking": NPX, "other": NPX}
TRANSPORT = {"network": NPX, "vehicle": NPX, "validation": NP, "card": NP}
WITH_PURPOSE: dict[tuple[str, str, str], dict[str, str]] = {
    ("city-it", "", "city-operations"): CITY_OPS,
    ("city-it", "tax", "city-operations"): CITY_OPS,
    ("city-it", "", "parking-enforcement"): {"parking-session": NPX},
    ("city-it", "tax", "parking-enforcement"): {"parking-session": NPX},
    ("tax-officer", "tax", "tax-collection"): {"tax": ALL},
    ("transport-operator", "", "transport-operations"): TRANSPORT,
    ("transport-operator", "tax", "transport-operations"): TRANSPORT,
}


def expected(role: str, tenant: str, purpose: str | None, group: str) -> str:
    extra = WITH_PURPOSE.get((role, tenant, purpose or ""), {})
    return extra.get(group, BASE.get((role, tenant), {}).get(group, DENIED))


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def principal(role: str) -> Principal:
    return PUBLIC if role == "public" else Principal(f"{role}-1", frozenset({role}), "token")


def seen(policy: Policy, role: str, tenant: str, purpose: str | None, type_name: str,
         action: str = "read") -> str:
    """The classes whose attributes the decision does not mask, as letters; "" if denied."""
    iri = policy.type_iri(type_name)
    d = decide(policy, principal(role), action, Resource(tenant, (iri,)), purpose)
    if not d.allowed:
        return DENIED
    classes = policy.types[iri].classes
    shown = {c for a, c in classes.items() if d.effect(a) != "mask"}
    hidden = {c for a, c in classes.items() if d.effect(a) == "mask"}
    mixed = shown & hidden
    assert not mixed, f"{role}/{purpose} {type_name}: class(es) {mixed} partly masked"
    return "".join(LETTER[c] for c in CLASSES if c in shown)


def letters_of(policy: Policy, type_name: str, wanted: str) -> str:
    """`wanted` limited to the classes the type has (a type with no personal attribute shows
    no `x` whatever is granted)."""
    present = {LETTER[c] for c in policy.types[policy.type_iri(type_name)].classes.values()}
    return "".join(ch for ch in wanted if ch in present)


CELLS = [(role, tenant, purpose, group) for role in ROLES for tenant in ("", "tax")
         for purpose in PURPOSES for group in GROUPS]


def test_the_table_covers_every_default_role_and_purpose(policy: Policy) -> None:
    assert set(policy.roles) == set(ROLES)
    assert set(policy.purposes) == {p for p in PURPOSES if p}
    assert {t for ts in GROUPS.values() for t in ts} == {i.name for i in policy.types.values()}


@pytest.mark.parametrize("role", ROLES)
def test_decision_table(policy: Policy, role: str) -> None:
    wrong = []
    for r, tenant, purpose, group in CELLS:
        if r != role:
            continue
        want = expected(role, tenant, purpose, group)
        for type_name in GROUPS[group]:
            got = seen(policy, role, tenant, purpose, type_name)
            if got != (letters_of(policy, type_name, want) if want else DENIED):
                wrong.append(f"{role} tenant={tenant or '@default'} purpose={purpose} "
                             f"{type_name}: got {got!r}, want {want!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("action", ["subscribe", "query-history"])
def test_subscriptions_and_history_decide_as_reads(policy: Policy, action: str) -> None:
    for role, tenant, purpose, group in CELLS:
        if role == "adapter":  # adapters read back what they publish; they do not subscribe
            continue
        for type_name in GROUPS[group]:
            assert (seen(policy, role, tenant, purpose, type_name, action)
                    == seen(policy, role, tenant, purpose, type_name)), (role, purpose, type_name)


# -- the three stated outcomes ---------------------------------------------------------

PUBLIC_TYPES = GROUPS["lighting"] + GROUPS["parking"] + GROUPS["network"]


@pytest.mark.parametrize("purpose", PURPOSES)
def test_public_reads_non_personal_attributes_of_lighting_parking_and_transport_network(
        policy: Policy, purpose: str | None) -> None:
    for type_name in PUBLIC_TYPES:
        iri = policy.type_iri(type_name)
        d = decide(policy, PUBLIC, "read", Resource("", (iri,)), purpose)
        assert d.allowed, (type_name, d.reason)
        assert d.rules == ("open-data-infrastructure",)
        for attribute, cls in policy.types[iri].classes.items():
            assert d.effect(attribute) == ("allow" if cls == "none" else "mask"), (
                type_name, attribute, cls)
        assert d.unclassified == "mask"  # an attribute the contract does not list stays hidden


@pytest.mark.parametrize("purpose", PURPOSES)
@pytest.mark.parametrize("tenant", ["", "tax"])
def test_public_reads_nothing_of_validations_cards_sessions_or_taxes(
        policy: Policy, purpose: str | None, tenant: str) -> None:
    for type_name in ("TicketValidation", "TransitCard", "ParkingSession", *TAX_TYPES):
        for action in ("read", "subscribe", "query-history"):
            d = decide(policy, PUBLIC, action, Resource(tenant, (policy.type_iri(type_name),)),
                       purpose)
            assert not d.allowed, (type_name, action, purpose)
            assert d.rules == ("default-deny",)


def test_tax_officer_reads_taxpayers_obligations_and_payments_for_tax_collection(
        policy: Policy) -> None:
    officer = principal("tax-officer")
    for type_name in TAX_TYPES:
        iri = policy.type_iri(type_name)
        d = decide(policy, officer, "read", Resource("tax", (iri,)), "tax-collection")
        assert d.allowed and d.rules == ("tax-officer-collection",)
        assert not d.masked and not d.pseudonymised
        assert all(d.effect(a) == "allow" for a in policy.types[iri].classes)
    obligation = policy.type_iri("TaxObligation")
    amount_due = policy.attribute_iri(obligation, "amountDue")
    d = decide(policy, officer, "read", Resource("tax", (obligation,)), "tax-collection")
    assert d.effect(amount_due) == "allow"


def test_tax_officer_needs_the_purpose_and_the_tax_tenant(policy: Policy) -> None:
    officer = principal("tax-officer")
    taxpayer = policy.type_iri("Taxpayer")
    assert not decide(policy, officer, "read", Resource("tax", (taxpayer,))).allowed
    assert not decide(policy, officer, "read", Resource("tax", (taxpayer,)),
                      "city-operations").allowed
    assert not decide(policy, officer, "read", Resource("", (taxpayer,)),
                      "tax-collection").allowed
    bound = Principal("t", frozenset({"tax-officer"}), "token", tenants=frozenset({"tax"}),
                      purposes=frozenset({"tax-collection"}))
    assert decide(policy, bound, "read", Resource("tax", (taxpayer,)), "tax-collection").allowed
    # a principal whose token does not let it claim tax-collection cannot use it
    other = Principal("t", frozenset({"tax-officer"}), "token",
                      purposes=frozenset({"audit"}))
    d = decide(policy, other, "read", Resource("tax", (taxpayer,)), "tax-collection")
    assert not d.allowed and "claim" in d.reason


def test_no_one_else_reads_tax_entities_personal_attributes(policy: Policy) -> None:
    checked = 0
    for role in ROLES:
        for purpose in PURPOSES:
            if role == "tax-officer" and purpose == "tax-collection":
                continue
            for tenant in ("", "tax", "other"):
                for type_name in TAX_TYPES:
                    iri = policy.type_iri(type_name)
                    for action in ("read", "subscribe", "query-history"):
                        d = decide(policy, principal(role), action, Resource(tenant, (iri,)),
                                   purpose)
                        checked += 1
                        if not d.allowed:
                            continue
                        leaked = [a for a, c in policy.types[iri].classes.items()
                                  if c in ("personal", "special") and d.effect(a) != "mask"]
                        assert not leaked, (role, purpose, tenant, type_name, leaked)
                        assert d.unclassified == "mask"
    assert checked == len(ROLES) * len(PURPOSES) * 3 * 3 * 3 - 3 * 3 * 3


def test_transport_operator_sees_validations_but_not_card_holders(policy: Policy) -> None:
    operator = principal("transport-operator")
    validation = policy.type_iri("TicketValidation")
    d = decide(policy, operator, "read", Resource("", (validation,)), "transport-operations")
    assert d.allowed
    for name in ("dateValidated", "hasStop", "hasRoute", "amountCharged", "validationResult"):
        assert d.effect(policy.attribute_iri(validation, name)) == "allow", name
    assert d.effect(policy.attribute_iri(validation, "refTransitCard")) == "pseudonymise"
    assert d.effect(policy.attribute_iri(validation, "riderCategory")) == "mask"

    card = policy.type_iri("TransitCard")
    d = decide(policy, operator, "read", Resource("", (card,)), "transport-operations")
    assert d.allowed
    for name in ("refHolder", "name", "balance", "riderCategory"):
        assert d.effect(policy.attribute_iri(card, name)) == "mask", name
    assert d.effect(policy.attribute_iri(card, "cardStatus")) == "allow"
    # without the purpose: nothing of validations or cards
    assert not decide(policy, operator, "read", Resource("", (validation,))).allowed
    assert not decide(policy, operator, "read", Resource("", (card,))).allowed


def test_adapters_write_their_domain_types_and_tax_only_in_the_tax_tenant(
        policy: Policy) -> None:
    adapter = principal("adapter")
    for type_name in ("Streetlight", "ParkingSession", "TicketValidation", "TransitCard"):
        for action in ("create", "update"):
            assert decide(policy, adapter, action,
                          Resource("", (policy.type_iri(type_name),))).allowed
        assert not decide(policy, adapter, "delete",
                          Resource("", (policy.type_iri(type_name),))).allowed
    taxpayer = policy.type_iri("Taxpayer")
    name = policy.attribute_iri(taxpayer, "name")
    # a tax adapter writes personal attributes (a write discloses nothing: no purpose needed)
    d = decide(policy, adapter, "create", Resource.entity([taxpayer], "tax", [name]))
    assert d.allowed and d.rules == ("adapter-tax",)
    assert not decide(policy, adapter, "create", Resource.entity([taxpayer], "", [name])).allowed
    assert not decide(policy, adapter, "create",
                      Resource("", (policy.type_iri("Person"),))).allowed
    # no one but administrators, city IT and adapters writes
    for role in ("public", "tax-officer", "transport-operator", "auditor", "dpo"):
        assert not decide(policy, principal(role), "create",
                          Resource("", (policy.type_iri("Streetlight"),))).allowed


def test_api_resources(policy: Policy) -> None:
    audit = Resource.of_api("audit")
    assert decide(policy, principal("auditor"), "administer", audit, "audit").allowed
    assert not decide(policy, principal("auditor"), "administer", audit).allowed
    assert decide(policy, principal("admin"), "administer", audit).allowed
    for role in ("public", "adapter", "city-it", "tax-officer", "transport-operator", "dpo"):
        assert not decide(policy, principal(role), "administer", audit, "audit").allowed, role
    dsr = Resource.of_api("data-subject-requests")
    assert decide(policy, principal("dpo"), "administer", dsr).allowed
    for role in ROLES:
        if role != "dpo":
            assert not decide(policy, principal(role), "administer", dsr).allowed, role


def test_undeclared_purpose_and_unknown_action_are_denied(policy: Policy) -> None:
    light = Resource("", (policy.type_iri("Streetlight"),))
    d = decide(policy, PUBLIC, "read", light, "marketing")
    assert not d.allowed and "not declared" in d.reason
    assert not decide(policy, principal("admin"), "launch", light).allowed


def test_an_entity_of_no_contracted_type_shows_nothing_personal_by_default(
        policy: Policy) -> None:
    custom = "https://example.org/ValidationsPerStopHour"
    d = decide(policy, principal("city-it"), "read", Resource("", (custom,)))
    assert d.allowed and d.unclassified == "mask"  # its attributes: unclassified, i.e. personal
    assert not decide(policy, PUBLIC, "read", Resource("", (custom,))).allowed
