"""The attribute kinds of NGSI-LD (clause 4.5) and the members each one may carry. Data only."""

from __future__ import annotations

from typing import Any

CORE = "https://uri.etsi.org/ngsi-ld/"

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

# Concise form (clause 4.5.2.3 and its siblings): with "type" left out, the value member names
# the kind. Order matters: "value" comes last, as every other member is more specific, and a
# "value" holding a GeoJSON geometry makes a GeoProperty (see parse.infer_kind).
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
# Optional members of an instance beside its value, in the order they are rendered.
METADATA = ("datasetId", "observedAt", "unitCode", "objectType", "valueType")
SYSTEM = ("createdAt", "modifiedAt")
# Members clients may send but the broker owns or produces itself: ignored on input (clauses
# 4.5.2.2 "System Generated", 4.8; lang is added by the language filter of clause 4.15; the
# previous* family and entity/entityList only appear in notifications and linked retrieval).
IGNORED = frozenset({
    "createdAt", "modifiedAt", "deletedAt", "instanceId", "lang", "entity", "entityList",
    "previousValue", "previousObject", "previousLanguageMap", "previousJson", "previousVocab",
    "previousValueList", "previousObjectList",
})
RELATIONSHIPS = frozenset({"Relationship", "ListRelationship"})
# Clauses 4.5.3.2, 4.5.18-4.5.24: these kinds are unitless, a unitCode on them is an error.
UNITLESS = frozenset({"Relationship", "ListRelationship", "LanguageProperty", "VocabProperty",
                      "JsonProperty"})

# RFC 7946 geometry types; clause 4.7 makes a GeoProperty value one of them.
GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
     "GeometryCollection"}
)
# Clause 4.7: these core attributes are always GeoProperties.
GEO_ATTRIBUTES = frozenset({CORE + "location", CORE + "observationSpace",
                            CORE + "operationSpace"})

# Entity members that are not attributes. createdAt/modifiedAt/deletedAt are broker-owned and
# ignored on input (clause 4.8).
ENTITY_MEMBERS = frozenset({"id", "@id", "type", "@type", "scope", "createdAt", "modifiedAt",
                            "deletedAt"})
# Clause 4.5.1: core terms of non-reified properties are never attribute names (they would
# compact onto an instance member). Checked both as written and expanded (CORE + term).
RESERVED_NAMES = frozenset({
    "id", "type", "scope", "value", "object", "languageMap", "vocab", "json", "valueList",
    "objectList", "datasetId", "instanceId", "observedAt", "unitCode", "lang", "objectType",
    "valueType", "createdAt", "modifiedAt", "deletedAt", "expiresAt", "entity", "entityList",
    "previousValue", "previousObject", "previousLanguageMap",
})

# The NGSI-LD Null (clause 5.2.1): deletes in merge (5.5.12) and partial update (5.5.8),
# refused everywhere else.
NULL = "urn:ngsi-ld:null"
# The datasetId that names the default instance explicitly (clause 4.5.5).
DEFAULT_DATASET = "@none"


def _null_list(value: Any) -> bool:
    return value == NULL or value == [NULL] or value == [{"object": NULL}]


# How each value member spells "delete this instance" (clauses 4.5.18-4.5.24, 5.2.1).
NULL_FORMS = {
    "value": lambda v: v == NULL,
    "object": lambda v: v == NULL,
    "vocab": lambda v: v == NULL,
    "json": lambda v: v == NULL,
    "languageMap": lambda v: v == NULL or v == {DEFAULT_DATASET: NULL},
    "valueList": _null_list,
    "objectList": _null_list,
}


def is_null_member(member: str, value: Any) -> bool:
    """Whether `value`, held by value member `member`, is the NGSI-LD Null of that member."""
    check = NULL_FORMS.get(member)
    return check is not None and check(value)


def is_deletion(instance: dict[str, Any]) -> bool:
    """Whether a parsed fragment instance asks to delete the stored instance of its datasetId.

    Deletions only come out of the parser where nulls are allowed (merge, partial update), in
    one canonical shape: {"value": NULL} plus the datasetId it targets, if any.
    """
    return instance.get("value") == NULL and "type" not in instance
