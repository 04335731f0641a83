"""Term expansion and compaction against the real core context and a Smart Data Models one."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from broker.ld.core import CORE_CONTEXT_URL, builtin_document, is_core_context_url
from broker.ld.termmap import CORE_TERMS, compile_context

NGSI = "https://uri.etsi.org/ngsi-ld/"
DEFAULT = NGSI + "default-context/"
SDM = Path(__file__).resolve().parents[4] / "shared/reference/smart-data-models"


@pytest.mark.parametrize(("term", "iri"), [
    ("location", NGSI + "location"),
    ("observationSpace", NGSI + "observationSpace"),
    ("Property", NGSI + "Property"),
    ("temperature", DEFAULT + "temperature"),
    ("urn:ngsi-ld:Thing:1", "urn:ngsi-ld:Thing:1"),
    ("https://example.org/a", "https://example.org/a"),
    ("ngsi-ld:foo", NGSI + "foo"),
    ("geojson:Point", "https://purl.org/geojson/vocab#Point"),
])
def test_core_expansion(term: str, iri: str) -> None:
    assert CORE_TERMS.expand(term) == iri


@pytest.mark.parametrize("term", ["location", "temperature", "Streetlight", "ngsi-ld:foo"])
def test_round_trip(term: str) -> None:
    assert CORE_TERMS.compact(CORE_TERMS.expand(term)) == term


def test_unknown_iri_stays_absolute() -> None:
    assert CORE_TERMS.compact("https://example.org/x") == "https://example.org/x"


def test_user_terms_and_prefixes() -> None:
    terms = compile_context([{"ex": "https://ex.org/", "Lamp": "ex:Lamp",
                              "power": {"@id": "https://ex.org/power", "@type": "@vocab"}}])
    assert terms.expand("Lamp") == "https://ex.org/Lamp"
    assert terms.expand("power") == "https://ex.org/power"
    assert terms.compact("https://ex.org/Lamp") == "Lamp"
    assert terms.compact("https://ex.org/other") == "ex:other"


def test_core_terms_are_protected() -> None:
    terms = compile_context([{"location": "https://evil.example/loc", "type": "https://x/t"}])
    assert terms.expand("location") == NGSI + "location"


def test_core_vocab_wins_over_user_vocab() -> None:
    # The core context is processed last (clause 5.5.7), so its @vocab is the one in force.
    terms = compile_context([{"@vocab": "https://vocab.example/"}])
    assert terms.expand("speed") == DEFAULT + "speed"


def test_smart_data_models_context() -> None:
    doc = orjson.loads((SDM / "Streetlighting/Streetlight/context.jsonld").read_bytes())
    terms = compile_context([doc["@context"]])
    iri = terms.expand("powerState")
    assert iri.startswith("https://smartdatamodels.org/")
    assert terms.compact(iri) == "powerState"
    assert terms.expand("location") == NGSI + "location"


@pytest.mark.parametrize("url", [
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.jsonld",
    "http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
    CORE_CONTEXT_URL,
])
def test_core_urls_are_builtin(url: str) -> None:
    assert is_core_context_url(url)
    assert builtin_document(url) is not None


def test_other_urls_are_not_core() -> None:
    assert not is_core_context_url("https://uri.etsi.org/ngsi-ld/v1/other.jsonld")
    assert builtin_document("https://example.org/ctx.jsonld") is None
