"""The attribute kinds of NGSI-LD (clause 4.5) and the member that carries each one's value."""

from __future__ import annotations

VALUE_MEMBER: dict[str, str] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "JsonProperty": "json",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
}

# Concise form (clause 4.5.x): with "type" left out, the value member names the kind.
# Order matters: "value" comes last, as every other member is more specific.
KIND_BY_MEMBER: tuple[tuple[str, str], ...] = (
    ("object", "Relationship"),
    ("objectList", "ListRelationship"),
    ("languageMap", "LanguageProperty"),
    ("vocab", "VocabProperty"),
    ("json", "JsonProperty"),
    ("valueList", "ListProperty"),
    ("value", "Property"),
)

VALUE_MEMBERS = frozenset(VALUE_MEMBER.values())
METADATA = ("datasetId", "observedAt", "unitCode", "objectType")
SYSTEM = ("createdAt", "modifiedAt")
# Members clients may send but the broker owns or ignores (clause 4.8, 5.2.x).
IGNORED = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId", "lang", "previousValue"})
RELATIONSHIPS = frozenset({"Relationship", "ListRelationship"})

GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
     "GeometryCollection"}
)
NULL = "urn:ngsi-ld:null"  # clause 4.5.x: deletes in merge-patch
