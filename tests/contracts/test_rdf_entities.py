"""Entities as RDF: the pure expansion (broker.entities.rdf) and GET /entities/{id} with
Accept: text/turtle or application/n-quads, parsed back with rdflib."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.namespace import RDF, XSD

from broker.entities.parse import parse_entity
from broker.entities.rdf import entities_graph, expand_entity, serialize
from broker.entities.render import RenderOptions
from broker.ld.termmap import compile_context

NGSI = "https://uri.etsi.org/ngsi-ld/"
DEFAULT = NGSI + "default-context/"
GEOJSON = "https://purl.org/geojson/vocab#"
SDM = "https://smartdatamodels.org/dataModel.Streetlighting/"
NOW = "2026-11-23T10:00:00.000Z"
LIGHT = "urn:ngsi-ld:Streetlight:craiova-001"
TERMS = compile_context([{"Streetlight": SDM + "Streetlight", "powerState": SDM + "powerState"}])

STREETLIGHT: dict[str, Any] = {
    "id": LIGHT,
    "type": "Streetlight",
    "scope": "/Craiova/Centru",
    "powerState": {"type": "Property", "value": "on", "observedAt": "2026-11-23T09:59:00Z",
                   "reliability": {"type": "Property", "value": 0.9}},
    "illuminanceLevel": {"type": "Property", "value": 12, "unitCode": "LUX"},
    "location": {"type": "GeoProperty",
                 "value": {"type": "Point", "coordinates": [23.7967, 44.319]}},
    "refGroup": {"type": "Relationship", "object": "urn:ngsi-ld:StreetlightGroup:centru",
                 "objectType": "StreetlightGroup"},
    "name": {"type": "LanguageProperty",
             "languageMap": {"ro": "Strada Unirii nr. 1, Târgu Jiu", "en": "1 Union Street"}},
    "lampType": {"type": "VocabProperty", "vocab": "LED"},
    "config": {"type": "JsonProperty", "json": {"dim": [30, 70]}},
    "schedule": {"type": "ListProperty", "valueList": ["18:00", "23:00", "06:00"]},
    "route": {"type": "ListRelationship",
              "objectList": ["urn:ngsi-ld:Road:1", "urn:ngsi-ld:Road:2"]},
    "address": {"type": "Property",
                "value": {"streetAddress": "Unirii 1", "bad key": "dropped", "@id": "relative"}},
    "temperature": [{"type": "Property", "value": 21.5, "datasetId": "urn:ngsi-ld:Dataset:a"},
                    {"type": "Property", "value": 22}],
}


def graph_of(body: dict[str, Any], opts: RenderOptions | None = None) -> Graph:
    entity = parse_entity(body, TERMS, NOW)
    text = serialize(entities_graph([entity], TERMS, opts), "text/turtle")
    return Graph().parse(data=text.decode(), format="turtle")  # what a consumer reads back


SUBJECT = URIRef(LIGHT)


def attr(g: Graph, name: str, subject: Any = SUBJECT) -> Any:
    nodes = list(g.objects(subject, URIRef(name)))
    assert len(nodes) == 1, (name, nodes)
    return nodes[0]


def test_entity_node_and_types() -> None:
    g = graph_of(STREETLIGHT)
    assert (URIRef(LIGHT), RDF.type, URIRef(SDM + "Streetlight")) in g
    assert (URIRef(LIGHT), URIRef(NGSI + "scope"), Literal("/Craiova/Centru")) in g


def test_property_is_a_node_with_has_value_and_metadata() -> None:
    g = graph_of(STREETLIGHT)
    node = attr(g, SDM + "powerState")
    assert isinstance(node, BNode)
    assert (node, RDF.type, URIRef(NGSI + "Property")) in g
    assert (node, URIRef(NGSI + "hasValue"), Literal("on")) in g
    observed = Literal("2026-11-23T09:59:00.000Z", datatype=URIRef(NGSI + "DateTime"))
    assert (node, URIRef(NGSI + "observedAt"), observed) in g
    sub = attr(g, DEFAULT + "reliability", node)  # sub-attribute: a node of the node
    assert (sub, URIRef(NGSI + "hasValue"), Literal(0.9, datatype=XSD.double)) in g
    level = attr(g, DEFAULT + "illuminanceLevel")
    assert (level, URIRef(NGSI + "hasValue"), Literal(12)) in g
    assert (level, URIRef(NGSI + "unitCode"), Literal("LUX")) in g


def test_relationship_has_object_iri_and_object_type() -> None:
    g = graph_of(STREETLIGHT)
    node = attr(g, DEFAULT + "refGroup")
    assert (node, RDF.type, URIRef(NGSI + "Relationship")) in g
    assert (node, URIRef(NGSI + "hasObject"), URIRef("urn:ngsi-ld:StreetlightGroup:centru")) in g
    assert (node, URIRef(NGSI + "hasObjectType"), URIRef(DEFAULT + "StreetlightGroup")) in g


def test_geoproperty_value_is_geojson_with_ordered_coordinates() -> None:
    g = graph_of(STREETLIGHT)
    geometry = attr(g, URIRef(NGSI + "hasValue"), attr(g, NGSI + "location"))
    assert (geometry, RDF.type, URIRef(GEOJSON + "Point")) in g
    coords = attr(g, GEOJSON + "coordinates", geometry)
    assert [float(c) for c in Collection(g, coords)] == [23.7967, 44.319]


def test_language_vocab_json_and_list_kinds() -> None:
    g = graph_of(STREETLIGHT)
    name = attr(g, DEFAULT + "name")
    assert (name, URIRef(NGSI + "hasLanguageMap"),
            Literal("Strada Unirii nr. 1, Târgu Jiu", lang="ro")) in g
    assert (name, URIRef(NGSI + "hasLanguageMap"), Literal("1 Union Street", lang="en")) in g
    lamp = attr(g, DEFAULT + "lampType")
    assert (lamp, URIRef(NGSI + "hasVocab"), URIRef(DEFAULT + "LED")) in g
    config = attr(g, URIRef(NGSI + "hasJSON"), attr(g, DEFAULT + "config"))
    assert config.datatype == RDF.JSON and str(config) == '{"dim":[30,70]}'
    schedule = attr(g, URIRef(NGSI + "hasValueList"), attr(g, DEFAULT + "schedule"))
    assert [str(v) for v in Collection(g, schedule)] == ["18:00", "23:00", "06:00"]
    route = attr(g, URIRef(NGSI + "hasObjectList"), attr(g, DEFAULT + "route"))
    targets = [attr(g, NGSI + "hasObject", member) for member in Collection(g, route)]
    assert targets == [URIRef("urn:ngsi-ld:Road:1"), URIRef("urn:ngsi-ld:Road:2")]


def test_multi_instance_attribute_gives_one_node_per_dataset_id() -> None:
    g = graph_of(STREETLIGHT)
    nodes = list(g.objects(URIRef(LIGHT), URIRef(DEFAULT + "temperature")))
    assert len(nodes) == 2
    datasets = {n: list(g.objects(n, URIRef(NGSI + "datasetId"))) for n in nodes}
    assert sorted(len(d) for d in datasets.values()) == [0, 1]
    assert URIRef("urn:ngsi-ld:Dataset:a") in [d for ds in datasets.values() for d in ds]


def test_compound_value_keys_expand_and_malformed_iris_are_dropped() -> None:
    g = graph_of(STREETLIGHT)
    value = attr(g, URIRef(NGSI + "hasValue"), attr(g, DEFAULT + "address"))
    assert (value, URIRef(DEFAULT + "streetAddress"), Literal("Unirii 1")) in g
    assert len(list(g.predicate_objects(value))) == 1  # "bad key" and the relative @id: gone


def test_options_select_attributes_and_system_attributes() -> None:
    entity = parse_entity(STREETLIGHT, TERMS, NOW)
    node = expand_entity(entity, TERMS, RenderOptions(attrs=frozenset({SDM + "powerState"}),
                                                      sys_attrs=True))
    assert set(node) == {"@id", "@type", NGSI + "scope", NGSI + "createdAt",
                         NGSI + "modifiedAt", SDM + "powerState"}
    assert node[NGSI + "createdAt"] == [{"@value": NOW, "@type": NGSI + "DateTime"}]


def test_n_quads_output_parses_as_n_quads() -> None:
    entity = parse_entity(STREETLIGHT, TERMS, NOW)
    text = serialize(entities_graph([entity], TERMS), "application/n-quads").decode()
    g = Graph().parse(data=text, format="nquads")
    assert (URIRef(LIGHT), RDF.type, URIRef(SDM + "Streetlight")) in g
    assert "Târgu Jiu" in text  # UTF-8, not escaped


# -- over HTTP -------------------------------------------------------------------------------

LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


@pytest.fixture
async def stored(client: httpx.AsyncClient) -> httpx.AsyncClient:
    body = {"id": LIGHT, "type": "Streetlight",
            "powerState": {"type": "Property", "value": "on"},
            "refGroup": {"type": "Relationship", "object": "urn:ngsi-ld:StreetlightGroup:c"}}
    r = await client.post("/ngsi-ld/v1/entities", json=body)
    assert r.status_code == 201, r.text
    return client


@pytest.mark.parametrize(("accept", "rdflib_format"),
                         [("text/turtle", "turtle"), ("application/n-quads", "nquads")])
async def test_http_retrieve_as_rdf(stored: httpx.AsyncClient, accept: str,
                                    rdflib_format: str) -> None:
    r = await stored.get(f"/ngsi-ld/v1/entities/{LIGHT}", headers={"Accept": accept})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(accept)
    g = Graph().parse(data=r.text, format=rdflib_format)
    node = attr(g, DEFAULT + "powerState")
    assert (node, URIRef(NGSI + "hasValue"), Literal("on")) in g
    rel = attr(g, DEFAULT + "refGroup")
    assert (rel, URIRef(NGSI + "hasObject"), URIRef("urn:ngsi-ld:StreetlightGroup:c")) in g
    assert (URIRef(LIGHT), RDF.type, URIRef(DEFAULT + "Streetlight")) in g


async def test_http_rdf_honours_attrs_and_preference(stored: httpx.AsyncClient) -> None:
    r = await stored.get(f"/ngsi-ld/v1/entities/{LIGHT}?attrs=refGroup",
                         headers={"Accept": "application/ld+json;q=0.5, text/turtle"})
    assert r.headers["content-type"].startswith("text/turtle")
    g = Graph().parse(data=r.text, format="turtle")
    assert not list(g.objects(URIRef(LIGHT), URIRef(DEFAULT + "powerState")))
    assert list(g.objects(URIRef(LIGHT), URIRef(DEFAULT + "refGroup")))


async def test_http_rdf_uses_the_link_context(stored: httpx.AsyncClient) -> None:
    ctx = {"@context": {"powerState": SDM + "powerState"}}
    r = await stored.post("/ngsi-ld/v1/jsonldContexts", json=ctx)
    assert r.status_code == 201, r.text
    url = f"{stored.base_url}{r.headers['Location']}"
    body = {"id": "urn:ngsi-ld:Streetlight:2", "type": "Streetlight",
            "powerState": {"type": "Property", "value": "off"}}
    r = await stored.post("/ngsi-ld/v1/entities", json=body, headers={"Link": LINK.format(url)})
    assert r.status_code == 201, r.text
    r = await stored.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:2",
                         headers={"Accept": "text/turtle"})
    g = Graph().parse(data=r.text, format="turtle")
    assert list(g.objects(URIRef("urn:ngsi-ld:Streetlight:2"), URIRef(SDM + "powerState")))


async def test_http_unsupported_type_is_still_406(stored: httpx.AsyncClient) -> None:
    r = await stored.get(f"/ngsi-ld/v1/entities/{LIGHT}", headers={"Accept": "application/xml"})
    assert r.status_code == 406
    assert r.json()["status"] == 406
    r = await stored.get(f"/ngsi-ld/v1/entities/{LIGHT}", headers={"Accept": "text/*"})
    assert r.headers["content-type"].startswith("text/turtle")


async def test_http_rdf_of_missing_entity_is_a_problem(stored: httpx.AsyncClient) -> None:
    r = await stored.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:none",
                         headers={"Accept": "text/turtle"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
