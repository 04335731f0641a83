"""The contracts as data: every file loads, is complete, resolves offline and matches upstream."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from broker.ld.core import (
    CETATE_CONTEXT_URL,
    CETATE_NAMESPACE,
    CONTRACTS,
    DEFAULT_VOCAB,
    builtin_document,
)
from broker.validation import ContractError, contracts, load_contracts
from broker.validation.contracts import apply_patches

REFERENCE = Path(__file__).resolve().parents[3] / "shared/reference/smart-data-models"
TYPES = contracts().names()
SDM = [t for t in TYPES if contracts().named(t).context != CETATE_CONTEXT_URL]
CETATE = [t for t in TYPES if t not in SDM]
LEVELS = {"none", "pseudonymous", "personal", "special"}


def test_the_issue_s_types_are_all_there() -> None:
    assert set(TYPES) == {
        "Streetlight", "StreetlightControlCabinet", "StreetlightGroup", "StreetlightModel",
        "Device", "OnStreetParking", "OffStreetParking", "ParkingSpot", "ParkingGroup",
        "ParkingAccess", "GtfsAgency", "GtfsStop", "GtfsRoute", "GtfsTrip",
        "PublicTransportStop", "Vehicle", "Organization", "Person", "PublicService", "Cost",
        "FareProduct", "TransitCard", "TicketValidation", "ParkingSession", "Taxpayer",
        "TaxObligation", "TaxPayment", "CrowdFlowObserved"}
    assert len(CETATE) == 7


def _properties(schema: Any, registry: Any, base: str, out: set[str]) -> None:
    """The top-level property names a schema allows, through $ref and allOf/anyOf/oneOf."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        ref = schema["$ref"]
        url = ref if not ref.startswith("#") else base + ref
        resolved = registry.resolver(base_uri=base).lookup(url)
        _properties(resolved.contents, registry, url.partition("#")[0], out)
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            _properties(sub, registry, base, out)
    out.update(schema.get("properties", {}))


@pytest.mark.parametrize("name", TYPES)
def test_every_attribute_is_classified(name: str) -> None:
    contract = contracts().named(name)
    raw = json.loads((CONTRACTS / contract.schema_path).read_text())
    patched = apply_patches(raw, json.loads(
        (CONTRACTS / "types" / f"{name}.json").read_text()).get("schemaPatches", []))
    Draft202012Validator.check_schema(patched)
    names: set[str] = set()
    registry = contract.validator._resolver._registry  # type: ignore[attr-defined]
    _properties(patched, registry, patched.get("$id", ""), names)
    assert names - set(contract.attributes) == set(), "unclassified attributes"
    assert {a.personal_data for a in contract.attributes.values()} <= LEVELS
    assert all(a.kind for n, a in contract.attributes.items() if n not in ("id", "type"))


@pytest.mark.parametrize("name", TYPES)
def test_context_resolves_offline_and_names_the_type(name: str) -> None:
    contract = contracts().named(name)
    document = builtin_document(contract.context)
    assert document is not None
    assert contract.terms.expand(name) == contract.type_iri
    assert contract.terms.compact(contract.type_iri) == name


def test_both_spellings_of_every_sdm_context_resolve_to_the_upstream_file() -> None:
    reference = json.loads((REFERENCE / "contextmap.json").read_text())
    local = [(url, path) for url, path in reference.items()
             if not url.startswith("_") and not path.startswith("../")]
    assert len(local) == 16  # 8 subjects x (github.io, raw.githubusercontent.com)
    for url, path in local:
        assert builtin_document(url) == json.loads((REFERENCE / path).read_text()), url


def test_cetate_context_is_under_the_project_namespace() -> None:
    context = builtin_document(CETATE_CONTEXT_URL)["@context"]
    for name in CETATE:
        assert context[name] == CETATE_NAMESPACE + name
        contract = contracts().named(name)
        for attribute in contract.attributes:
            if attribute not in ("id", "type"):  # defined here, or a core term (status)
                iri = contract.terms.expand(attribute)
                assert not iri.startswith(DEFAULT_VOCAB), f"{name}.{attribute} has no term"


def test_upstream_schemas_are_verbatim_copies() -> None:
    provenance = json.loads((CONTRACTS / "PROVENANCE.json").read_text())
    for entry in provenance:
        if "commit" in entry:
            data = (CONTRACTS / entry["local"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["local"]


def test_classification_of_the_sensitive_attributes() -> None:
    named = contracts().named
    assert named("Taxpayer").personal_data("taxIdentifierHash") == "pseudonymous"
    assert named("TaxObligation").personal_data("amountDue") == "personal"
    assert named("TransitCard").personal_data("riderCategory") == "special"
    assert named("TicketValidation").personal_data("riderCategory") == "special"
    assert named("Vehicle").personal_data("vehiclePlateIdentifier") == "personal"
    assert named("Person").personal_data("familyName") == "personal"
    assert named("Streetlight").personal_data("powerState") == "none"
    assert named("TaxPayment").lawful_basis == "legal-obligation"
    assert named("TicketValidation").retention == "P90D"
    # The security layer works on the internal form: the same classes by expanded IRI.
    by_iri = named("TaxObligation").by_iri()
    assert by_iri["https://cetate.city/ns/amountDue"].personal_data == "personal"
    parking = named("ParkingSpot").by_iri()
    assert parking["https://smartdatamodels.org/dataModel.Parking/refParkingSite"].kind == \
        "Relationship"


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, root, ignore=shutil.ignore_patterns("openapi.yaml"))
    return root


def test_adding_a_type_is_a_data_change(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    contract = json.loads((root / "types/ParkingSpot.json").read_text())
    contract.update(type="BikeSpot", typeIri="https://example.org/BikeSpot")
    (root / "types/BikeSpot.json").write_text(json.dumps(contract))
    loaded = load_contracts(root)
    assert "https://example.org/BikeSpot" in loaded and len(loaded) == len(TYPES) + 1


@pytest.mark.parametrize(("change", "message"), [
    ({"retention": "ten years"}, "retention"),
    ({"lawfulBasis": "because"}, "lawfulBasis"),
    ({"attributes": {"id": {"personalData": "secret"}}}, "attributes/id/personalData"),
    ({"type": "Other"}, "name it after the type"),
    ({"schemaPatches": [{"op": "replace", "path": "/nope/x", "value": 1, "$comment": "c"}]},
     "does not apply"),
    ({"context": "https://example.org/not-local.jsonld"}, "contextmap"),
])
def test_a_broken_contract_is_refused(tmp_path: Path, change: dict[str, Any],
                                      message: str) -> None:
    root = _copy(tmp_path)
    path = root / "types/GtfsRoute.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ContractError, match=message):
        load_contracts(root)
