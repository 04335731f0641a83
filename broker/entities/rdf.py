"""Entities as RDF: the internal form -> expanded JSON-LD -> an rdflib Graph. Pure.

The triples are those of the JSON-LD expansion of the normalized representation (clause 4.5.1)
with the core @context, so a linked-data consumer sees NGSI-LD's own RDF shape (annex E): the
entity is a node with its types, each attribute instance a node of its kind (ngsi-ld:Property,
ngsi-ld:Relationship, ...) holding its value through ngsi-ld:hasValue, hasObject, hasLanguageMap,
hasVocab, hasJSON, hasValueList or hasObjectList, plus observedAt, unitCode, datasetId and its
sub-attributes. Entity ids and attribute names are already IRIs in the internal form; only the
keys of compound values are expanded here, with the requester's @context (as a JSON-LD processor
would expand the normalized form the requester reads).

JSON-LD to RDF drops what does not name a well-formed absolute IRI (JSON-LD 1.1 API §8.1 and
§8.2: relative or malformed IRIs are ignored), so a hostile compound value never yields bad
N-Quads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson
from rdflib import Graph

from broker.entities.kinds import CORE, SYSTEM
from broker.entities.render import RenderOptions
from broker.entities.terms import Terms

Entity = dict[str, Any]
Node = dict[str, Any]

GEOJSON = "https://purl.org/geojson/vocab#"
DATE_TIME = CORE + "DateTime"
HAS_VALUE = CORE + "hasValue"
HAS_OBJECT = CORE + "hasObject"

# The member each kind's value goes to, as the core @context maps it ("value" ->
# ngsi-ld:hasValue, "object" -> ngsi-ld:hasObject, ...).
VALUE_PREDICATE: dict[str, str] = {
    "Property": HAS_VALUE,
    "GeoProperty": HAS_VALUE,
    "Relationship": HAS_OBJECT,
    "LanguageProperty": CORE + "hasLanguageMap",
    "VocabProperty": CORE + "hasVocab",
    "JsonProperty": CORE + "hasJSON",
    "ListProperty": CORE + "hasValueList",
    "ListRelationship": CORE + "hasObjectList",
}
# Members of compound values that the core @context declares "@container": "@list": their
# order is data (GeoJSON positions), so they become RDF lists, not sets of values.
LIST_MEMBERS = frozenset({GEOJSON + "coordinates", GEOJSON + "bbox"})

# The RDF media types offered for entities, and the rdflib serializer of each. N-Triples is
# N-Quads without graph labels: the default graph is all there is.
TURTLE = "text/turtle"
N_QUADS = "application/n-quads"
SERIALIZERS: dict[str, str] = {TURTLE: "turtle", N_QUADS: "nt11"}

# RFC 3987: an absolute IRI has a scheme and none of these characters (they cannot be written
# in N-Quads or Turtle IRIs either).
_IRI_RE = re.compile(r'^[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20<>"{}|\\^`]*$')
_LANG_RE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")


def is_iri(value: Any) -> bool:
    return isinstance(value, str) and _IRI_RE.match(value) is not None


def _ids(values: Any) -> list[Node]:
    items = values if isinstance(values, list) else [values]
    return [{"@id": v} for v in items if is_iri(v)]


def _date(value: str) -> list[Node]:
    return [{"@value": value, "@type": DATE_TIME}]


# -- compound values (JSON-LD 1.1 API §5.1 expansion, the parts JSON values can reach) ----------

def _value_object(node: dict[str, Any], terms: Terms) -> list[Node]:
    value = node["@value"]
    if value is None:
        return []
    if isinstance(value, (dict, list)):
        return [{"@value": value, "@type": "@json"}]
    out: Node = {"@value": value}
    kind = node.get("@type")
    lang = node.get("@language")
    if isinstance(kind, str) and is_iri(terms.expand(kind)):
        out["@type"] = terms.expand(kind)
    elif isinstance(lang, str) and isinstance(value, str) and _LANG_RE.match(lang):
        out["@language"] = lang
    return [out]


def _node(value: dict[str, Any], terms: Terms) -> list[Node]:
    expanded = {terms.expand(k) if not k.startswith("@") else k: v for k, v in value.items()}
    if "@value" in expanded:
        return _value_object(expanded, terms)
    if "@list" in expanded:
        items = expanded["@list"]
        return [{"@list": [i for v in (items if isinstance(items, list) else [items])
                           for i in _list_item(v, terms)]}]
    out: Node = {}
    for key, member in expanded.items():
        if key == "@id":
            if is_iri(member):
                out["@id"] = member
        elif key == "@type":
            names = member if isinstance(member, list) else [member]
            types = [terms.expand(t) for t in names if isinstance(t, str)]
            if types := [t for t in types if is_iri(t)]:
                out["@type"] = types
        elif not key.startswith("@") and is_iri(key):
            if key in LIST_MEMBERS and isinstance(member, list):
                out[key] = [{"@list": [i for v in member for i in _list_item(v, terms)]}]
            elif items := expand_value(member, terms):
                out[key] = items
    return [out]


def _list_item(value: Any, terms: Terms) -> list[Node]:
    """A member of an RDF list: nested arrays stay lists (JSON-LD 1.1 lists of lists)."""
    if isinstance(value, list):
        return [{"@list": [i for v in value for i in _list_item(v, terms)]}]
    return expand_value(value, terms)


def expand_value(value: Any, terms: Terms) -> list[Node]:
    """The expanded form of a JSON value: scalars become literals, objects nodes (their keys
    expanded with `terms`), arrays the set of their members; null disappears."""
    if value is None:
        return []
    if isinstance(value, list):
        return [item for v in value for item in expand_value(v, terms)]
    if isinstance(value, dict):
        return _node(value, terms)
    return [{"@value": value}]


# -- attribute instances and entities ----------------------------------------------------------

def _language_map(languages: dict[str, Any]) -> list[Node]:
    out: list[Node] = []
    for tag, texts in languages.items():
        for text in texts if isinstance(texts, list) else [texts]:
            if not isinstance(text, str):
                continue
            literal: Node = {"@value": text}
            if tag != "@none" and _LANG_RE.match(tag):
                literal["@language"] = tag
            out.append(literal)
    return out


def _main_value(kind: str, inst: dict[str, Any], terms: Terms) -> list[Node]:
    if kind in ("Property", "GeoProperty"):
        return expand_value(inst["value"], terms)
    if kind == "Relationship":
        return _ids(inst["object"])
    if kind == "LanguageProperty":
        return _language_map(inst["languageMap"])
    if kind == "VocabProperty":
        return _ids(inst["vocab"])
    if kind == "JsonProperty":
        return [{"@value": inst["json"], "@type": "@json"}]
    if kind == "ListProperty":
        return [{"@list": [i for v in inst["valueList"] for i in _list_item(v, terms)]}]
    # ListRelationship: each member is {"object": URI} in the normalized form (annex C.2.2).
    return [{"@list": [{HAS_OBJECT: [node]} for node in _ids(inst["objectList"])]}]


def _instance(inst: dict[str, Any], terms: Terms, opts: RenderOptions) -> Node:
    kind = inst["type"]
    node: Node = {"@type": [CORE + kind]}
    if value := _main_value(kind, inst, terms):
        node[VALUE_PREDICATE[kind]] = value
    if "datasetId" in inst:
        node[CORE + "datasetId"] = _ids(inst["datasetId"])
    if "observedAt" in inst:
        node[CORE + "observedAt"] = _date(inst["observedAt"])
    if "unitCode" in inst:
        node[CORE + "unitCode"] = [{"@value": inst["unitCode"]}]
    if "objectType" in inst:
        node[CORE + "hasObjectType"] = _ids(inst["objectType"])
    if isinstance(inst.get("valueType"), str):
        node[CORE + "hasValueType"] = _ids(terms.expand(inst["valueType"]))
    if opts.sys_attrs:
        node.update((CORE + s, _date(inst[s])) for s in SYSTEM if s in inst)
    for key, child in inst.items():
        if ":" in key and isinstance(child, dict) and is_iri(key):  # sub-attributes
            node[key] = [_instance(child, terms, opts)]
    return node


def expand_entity(entity: Entity, terms: Terms, opts: RenderOptions | None = None) -> Node:
    """The expanded JSON-LD node object of an entity in the normalized representation;
    `opts` selects attributes, instances and system attributes as for JSON output."""
    opts = opts or RenderOptions()
    node: Node = {"@id": entity["id"], "@type": [t for t in entity["type"] if is_iri(t)]}
    if entity.get("scope") and opts.keeps("scope", CORE + "scope"):
        node[CORE + "scope"] = [{"@value": s} for s in entity["scope"]]
    if opts.sys_attrs:
        node.update((CORE + s, _date(entity[s])) for s in SYSTEM
                    if s in entity and opts.keeps(s))
    for iri, all_instances in entity["attrs"].items():
        instances = opts.instances(all_instances) if opts.keeps_attribute(iri) else []
        if instances and is_iri(iri):
            node[iri] = [_instance(i, terms, opts) for i in instances]
    return node


def to_graph(expanded: Iterable[Node]) -> Graph:
    """An rdflib Graph of expanded JSON-LD node objects (rdflib's own JSON-LD to RDF)."""
    graph = Graph()
    graph.bind("ngsi-ld", CORE)
    graph.bind("geojson", GEOJSON)
    nodes = list(expanded)
    if nodes:
        graph.parse(data=orjson.dumps(nodes).decode(), format="json-ld")
    return graph


def entities_graph(entities: Iterable[Entity], terms: Terms,
                   opts: RenderOptions | None = None) -> Graph:
    return to_graph(expand_entity(e, terms, opts) for e in entities)


def serialize(graph: Graph, media: str) -> bytes:
    """The graph as Turtle or N-Quads (`media` one of SERIALIZERS), UTF-8."""
    return graph.serialize(format=SERIALIZERS[media], encoding="utf-8")
