"""Every shipped role (and public, and a two-role principal) × every purpose (and none) × both
tenants, over GET and query in normalized, concise, keyValues and GeoJSON: no value the decision
masks or pseudonymises ever leaves the broker, and every value it shows in clear does.

Each attribute of each entity holds a value found nowhere else (a sentinel), so the answer's
text is searched for it whatever the format's shape. The cases are counted and printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from security.identity.principal import Principal
from security.policy.decide import decide
from security.policy.load import load_policy
from security.policy.model import Decision, Resource
from tests.security.enforcement.conftest import City

ENTITIES = "/ngsi-ld/v1/entities"
TYPES = ("Streetlight", "TicketValidation", "TransitCard", "TaxObligation", "Taxpayer",
         "ParkingSession")
ROLES: tuple[tuple[str, ...], ...] = ((), ("admin",), ("adapter",), ("city-it",),
                                      ("tax-officer",), ("transport-operator",), ("auditor",),
                                      ("dpo",), ("city-it", "transport-operator"))
FORMATS: tuple[dict[str, str] | str, ...] = ({}, {"options": "concise"},
                                           {"options": "keyValues"}, "geo")
CONTRACTS = Path(__file__).resolve().parents[3] / "contracts" / "types"


def sentinel(type_name: str, attr: str) -> str:
    return f"s3cr3t-{type_name}-{attr}-v"


def entities(policy: Any) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(type IRI, entity with expanded names, attribute IRI -> its sentinel) per type."""
    out = []
    for name in TYPES:
        iri = policy.type_iri(name)
        kinds = {a: (m.get("kind") or "") for a, m in
                 json.loads((CONTRACTS / f"{name}.json").read_text())["attributes"].items()}
        entity: dict[str, Any] = {"id": f"urn:ngsi-ld:{name}:grid", "type": iri}
        values = {}
        for attr_iri, short in policy.types[iri].names.items():
            kind = kinds.get(short, "")
            if short in ("id", "type") or kind == "GeoProperty" or attr_iri.startswith("@"):
                continue
            value = sentinel(name, short)
            values[attr_iri] = value
            entity[attr_iri] = ({"type": "Relationship", "object": f"urn:ngsi-ld:X:{value}"}
                                if kind == "Relationship"
                                else {"type": "Property", "value": value})
        entity["location"] = {"type": "GeoProperty",
                              "value": {"type": "Point", "coordinates": [23.8, 44.3]}}
        out.append((iri, entity, values))
    return out


def check(text: str, decision: Decision, values: dict[str, str], *, complete: bool) -> int:
    """Assert the answer holds no hidden value (and, if `complete`, every visible one)."""
    checked = 0
    for attr, value in values.items():
        effect = decision.effect(attr) if decision.allowed else "mask"
        if effect != "allow":
            assert value not in text, (attr, effect)
        elif complete:
            assert value in text, attr
        checked += 1
    return checked


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_no_hidden_value_on_any_path_in_any_format(city: City) -> None:
    policy = load_policy()
    made = entities(policy)
    for tenant in ("", "tax"):
        for _, entity, _ in made:
            await city.create(entity, tenant=tenant or None, context="https://uri.etsi.org/"
                              "ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld")
    cases = requests = 0
    for roles in ROLES:
        principal = (Principal("grid", frozenset(roles), kind="token") if roles
                     else Principal("public", frozenset({"public"})))
        auth = city.token(*roles, sub="grid") if roles else {}
        for purpose in (None, *sorted(policy.purposes)):
            for tenant in ("", "tax"):
                headers = {**auth, **({"NGSILD-Tenant": tenant} if tenant else {}),
                           **({"Cetate-Purpose": purpose} if purpose else {})}
                decisions = {iri: decide(policy, principal, "read",
                                         Resource.entity([iri], tenant), purpose)
                             for iri, _, _ in made}
                for fmt in FORMATS:
                    accept = {"Accept": "application/geo+json"} if fmt == "geo" else {}
                    params = {"idPattern": ".*", "limit": "100",
                              **(fmt if isinstance(fmt, dict) else {})}
                    answer = await city.http.get(ENTITIES, params=params,
                                                 headers={**headers, **accept})
                    requests += 1
                    assert answer.status_code == 200, answer.text
                    text = answer.text
                    for iri, entity, values in made:
                        shown = entity["id"] in text
                        assert shown == decisions[iri].allowed, (roles, purpose, tenant, iri)
                        cases += check(text, decisions[iri], values, complete=False)
                for iri, entity, values in made:
                    answer = await city.http.get(f"{ENTITIES}/{entity['id']}", headers=headers)
                    requests += 1
                    assert answer.status_code == (200 if decisions[iri].allowed else 404)
                    cases += check(answer.text, decisions[iri], values, complete=True)
    print(f"\n{cases} attribute checks over {requests} requests")
    assert requests == len(ROLES) * (len(policy.purposes) + 1) * 2 * (len(FORMATS) + len(TYPES))
