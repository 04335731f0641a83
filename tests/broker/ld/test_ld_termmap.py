"""Term expansion and compaction against the real core context and Smart Data Models ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import BadRequestData
from broker.ld import core
from broker.ld.core import (
    CORE_CONTEXT_URL,
    MissingContracts,
    builtin_document,
    core_document,
    is_core_context_url,
)
from broker.ld.termmap import CORE_TERMS, MAX_CHAIN, MEMO_LIMIT, TermMap, compile_context

NGSI = "https://uri.etsi.org/ngsi-ld/"
DEFAULT = NGSI + "default-context/"
SDM_ROOT = Path(__file__).resolve().parents[4] / "shared/reference/smart-data-models"
STREETLIGHT = SDM_ROOT / "Streetlighting/Streetlight/context.jsonld"
PARKING = SDM_ROOT / "Parking/ParkingSpot/context.jsonld"
SDM_STREETLIGHTING = "https://smartdatamodels.org/dataModel.Streetlighting/"
needs_sdm = pytest.mark.skipif(not STREETLIGHT.exists(), reason="shared/reference not present")


def sdm(path: Path) -> dict[str, Any]:
    ctx: dict[str, Any] = orjson.loads(path.read_bytes())["@context"]
    return ctx


# -- the core context --------------------------------------------------------------------------
@pytest.mark.parametrize(("term", "iri"), [
    ("location", NGSI + "location"),
    ("observationSpace", NGSI + "observationSpace"),
    ("Property", NGSI + "Property"),
    ("VocabProperty", NGSI + "VocabProperty"),
    ("vocab", NGSI + "hasVocab"),
    ("objectType", NGSI + "hasObjectType"),
    ("temperature", DEFAULT + "temperature"),
    ("urn:ngsi-ld:Thing:1", "urn:ngsi-ld:Thing:1"),
    ("https://example.org/a", "https://example.org/a"),
    ("ngsi-ld:foo", NGSI + "foo"),
    ("geojson:Point", "https://purl.org/geojson/vocab#Point"),
    ("Point", "https://purl.org/geojson/vocab#Point"),
    ("description", "http://purl.org/dc/terms/description"),
    ("_:b0", "_:b0"),
    ("type", "@type"),  # keyword aliases of the core context
    ("id", "@id"),
])
def test_core_expansion(term: str, iri: str) -> None:
    assert CORE_TERMS.expand(term) == iri


@pytest.mark.parametrize(("iri", "term"), [
    (NGSI + "location", "location"),
    (NGSI + "hasVocab", "vocab"),
    (DEFAULT + "temperature", "temperature"),
    (NGSI + "notACoreTerm", "ngsi-ld:notACoreTerm"),
    ("https://purl.org/geojson/vocab#other", "geojson:other"),
    ("https://example.org/x", "https://example.org/x"),
    ("urn:ngsi-ld:Thing:1", "urn:ngsi-ld:Thing:1"),
    # "location" means the core IRI and "a:b" an absolute one: a compact IRI is needed.
    (DEFAULT + "location", "ngsi-ld:default-context/location"),
    (DEFAULT + "a:b", "ngsi-ld:default-context/a:b"),
    ("@type", "type"),
])
def test_core_compaction(iri: str, term: str) -> None:
    assert CORE_TERMS.compact(iri) == term


@pytest.mark.parametrize("term", ["location", "temperature", "Streetlight", "ngsi-ld:foo",
                                  "geojson:other", "urn:x:1", "https://ex.org/a"])
def test_round_trip(term: str) -> None:
    assert CORE_TERMS.compact(CORE_TERMS.expand(term)) == term


NAMES = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,24}\Z")


@given(NAMES)
def test_default_vocab_round_trip(name: str) -> None:
    iri = CORE_TERMS.expand(name)
    if name not in CORE_TERMS.terms:
        assert iri == DEFAULT + name
    assert CORE_TERMS.compact(iri) == name


IRIS = st.one_of(
    *(NAMES.map(lambda n, base=base: base + n)  # type: ignore[misc]
      for base in (DEFAULT, NGSI, "https://purl.org/geojson/vocab#", "https://ex.org/")),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30).map(
        lambda rest: "urn:x:" + rest),
)


@given(IRIS)
def test_compaction_always_expands_back(iri: str) -> None:
    assert CORE_TERMS.expand(CORE_TERMS.compact(iri)) == iri


def test_vocab_valued_members() -> None:
    for member in ("vocab", "objectType", "attributeName", "valueType"):
        assert CORE_TERMS.expands_values(CORE_TERMS.expand(member))
    assert not CORE_TERMS.expands_values(NGSI + "hasObject")  # "@type": "@id", not vocab
    assert not CORE_TERMS.expands_values(NGSI + "location")


# -- user contexts -----------------------------------------------------------------------------
def test_user_terms_and_prefixes() -> None:
    terms = compile_context([{"ex": "https://ex.org/", "Lamp": "ex:Lamp",
                              "power": {"@id": "https://ex.org/power", "@type": "@vocab"}}])
    assert terms.expand("Lamp") == "https://ex.org/Lamp"
    assert terms.expand("ex:Pole") == "https://ex.org/Pole"
    assert terms.compact("https://ex.org/Lamp") == "Lamp"
    assert terms.compact("https://ex.org/other") == "ex:other"
    assert terms.expands_values("https://ex.org/power")
    assert terms.expand("location") == NGSI + "location"  # the core is still there


def test_only_prefix_flagged_terms_make_compact_iris() -> None:
    # JSON-LD 1.1: a simple term whose IRI ends in a gen-delim, or "@prefix": true.
    terms = compile_context([{
        "Lamp": "https://ex.org/Lamp",  # no gen-delim at the end: not a prefix
        "exp": {"@id": "https://exp.org/"},  # expanded definition: not a prefix
        "pre": {"@id": "https://pre.org/", "@prefix": True},
    }])
    assert terms.expand("Lamp:x") == "Lamp:x"
    assert terms.expand("exp:x") == "exp:x"
    assert terms.expand("pre:x") == "https://pre.org/x"
    assert terms.compact("https://exp.org/x") == "https://exp.org/x"
    assert terms.compact("https://pre.org/x") == "pre:x"


def test_terms_defined_through_terms_in_any_order() -> None:
    terms = compile_context([{"Lamp": "sl:Lamp", "Alias": "Lamp", "sl": "https://sl.org/",
                              "Relative": "relativeThing"}])
    assert terms.expand("Lamp") == "https://sl.org/Lamp"
    assert terms.expand("Alias") == "https://sl.org/Lamp"
    assert terms.expand("Relative") == DEFAULT + "relativeThing"
    assert terms.compact("https://sl.org/Lamp") == "Lamp"  # shortest, then least


def test_prefixes_carry_across_contexts() -> None:
    terms = compile_context([{"ex": "https://ex.org/"}, {"Lamp": "ex:Lamp"}])
    assert terms.expand("Lamp") == "https://ex.org/Lamp"


def test_cyclic_definitions_are_refused() -> None:
    with pytest.raises(BadRequestData, match="itself"):
        compile_context([{"a": "b", "b": "a"}])
    with pytest.raises(BadRequestData):
        compile_context([{"a": 5}])
    with pytest.raises(BadRequestData):
        compile_context([{"@vocab": 5}])


def test_long_definition_chains_are_refused() -> None:
    chain = {f"t{i}": f"t{i + 1}" for i in range(MAX_CHAIN + 10)}
    with pytest.raises(BadRequestData, match="too many"):
        compile_context([chain])
    short = compile_context([{f"t{i}": f"t{i + 1}" for i in range(MAX_CHAIN - 1)}])
    assert short.expand("t0") == DEFAULT + f"t{MAX_CHAIN - 1}"


def test_self_reference_is_harmless() -> None:
    terms = compile_context([{"Lamp": "Lamp", "ex": "https://ex.org/", "ex:Pole": "ex:Pole"}])
    assert terms.expand("Lamp") == DEFAULT + "Lamp"
    assert terms.expand("ex:Pole") == "https://ex.org/Pole"


def test_null_definition_and_later_contexts_win() -> None:
    terms = compile_context([{"Lamp": "https://a.org/Lamp", "Pole": "https://a.org/Pole"},
                             {"Lamp": "https://b.org/Lamp", "Pole": None}])
    assert terms.expand("Lamp") == "https://b.org/Lamp"
    assert terms.expand("Pole") == DEFAULT + "Pole"


@pytest.mark.parametrize("redefinition", [
    {"location": "https://evil.example/loc"},
    {"type": "https://evil.example/type"},
    {"id": {"@id": "https://evil.example/id"}},
    {"observedAt": "https://evil.example/observedAt"},
    {"vocab": "https://evil.example/vocab"},
    {"ngsi-ld": "https://evil.example/"},
])
def test_core_terms_are_protected(redefinition: dict[str, Any]) -> None:
    terms = compile_context([redefinition])
    for term in redefinition:
        assert terms.expand(term) == CORE_TERMS.expand(term)
    assert terms.expands_values(NGSI + "hasVocab")


def test_core_vocab_wins_over_user_vocab() -> None:
    # The core context is processed last (clause 5.5.7), so its @vocab is the one in force...
    terms = compile_context([{"@vocab": "https://vocab.example/", "Lamp": "Lamp2"}])
    assert terms.expand("speed") == DEFAULT + "speed"
    # ...but the user's @vocab applied to the user's own relative definitions.
    assert terms.expand("Lamp") == "https://vocab.example/Lamp2"


def test_scoped_and_unknown_keywords_are_ignored() -> None:
    terms = compile_context([{"@version": 1.1, "@protected": True, "@language": "ro",
                              "Lamp": {"@id": "https://ex.org/Lamp", "@context": {"x": "y:z"},
                                       "@container": "@set"},
                              "weird": "@notakeyword"}])
    assert terms.expand("Lamp") == "https://ex.org/Lamp"
    assert terms.expand("x") == DEFAULT + "x"
    assert terms.expand("weird") == DEFAULT + "weird"


@needs_sdm
def test_smart_data_models_context() -> None:
    streetlight = sdm(STREETLIGHT)
    terms = compile_context([streetlight])
    assert terms.expand("powerState") == SDM_STREETLIGHTING + "powerState"
    assert terms.expand("Streetlight") == SDM_STREETLIGHTING + "Streetlight"
    assert terms.compact(SDM_STREETLIGHTING + "Streetlight") == "Streetlight"
    assert terms.expand("location") == NGSI + "location"
    assert terms.expand("name") == "https://smartdatamodels.org/name"
    for term in streetlight:  # every SDM term survives a round trip
        if not term.startswith("@"):
            iri = terms.expand(term)
            assert terms.expand(terms.compact(iri)) == iri


@needs_sdm
def test_two_smart_data_models_contexts_together() -> None:
    terms = compile_context([sdm(STREETLIGHT), sdm(PARKING)])
    assert terms.expand("powerState") == SDM_STREETLIGHTING + "powerState"
    assert terms.expand("ParkingSpot").endswith("dataModel.Parking/ParkingSpot")
    assert terms.expand("location") == NGSI + "location"


# -- the TermMap object ------------------------------------------------------------------------
def test_term_map_is_immutable_and_hashable() -> None:
    with pytest.raises(AttributeError):
        CORE_TERMS._terms = {}
    with pytest.raises(TypeError):
        CORE_TERMS.terms["x"] = "y"  # type: ignore[index]
    assert {CORE_TERMS: 1}[CORE_TERMS] == 1


def test_memo_is_bounded() -> None:
    terms = TermMap({"a": "https://ex.org/a"})
    for i in range(MEMO_LIMIT + 50):
        assert terms.expand(f"t{i}") == DEFAULT + f"t{i}"
        assert terms.compact(DEFAULT + f"t{i}") == f"t{i}"
    assert len(terms._expand_memo) == MEMO_LIMIT
    assert len(terms._compact_memo) == MEMO_LIMIT


# -- built-in documents ------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    *(f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.{n}.jsonld" for n in range(3, 10)),
    "http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
    "http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    CORE_CONTEXT_URL,
])
def test_core_urls_are_builtin(url: str) -> None:
    assert is_core_context_url(url)
    assert builtin_document(url) is core_document()


def test_data_integrity_context_is_builtin() -> None:
    doc = builtin_document("https://w3id.org/security/data-integrity/v2")
    assert isinstance(doc, dict) and "DataIntegrityProof" in doc["@context"]
    assert not is_core_context_url("https://w3id.org/security/data-integrity/v2")


@pytest.mark.parametrize("url", [
    "https://uri.etsi.org/ngsi-ld/v1/other.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v2.0.jsonld",
    "https://evil.example/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld?x=1",
])
def test_other_urls_are_not_core(url: str) -> None:
    assert not is_core_context_url(url)
    assert builtin_document(url) is None


def test_missing_contracts_is_a_clear_error() -> None:
    with pytest.raises(MissingContracts, match="contracts/"):
        core._load("no-such-context.jsonld")
