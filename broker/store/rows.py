"""Derived rows of an entity: what the query engine indexes. Pure; shared by every engine.

An engine stores the entity document whole and, in the same transaction, these rows beside it:

- one `AttrRow` per attribute instance, and one per sub-attribute (recursively, with the
  instance's datasetId), its `name` the path of IRIs joined by `SUB_ATTR_SEP` (`attr_path`);
- one `GeoBox` per GeoProperty instance: the bounding box a geo-query prefilters on.

A scalar value lands in the column that compares natively (`value_num`, `value_text`,
`value_bool`, or `object` for a relationship target); anything else (arrays, objects, language
maps, geometries) is kept as JSON in `value_json`, for the engine's JSON functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from broker.query.geo import geometry_bbox as query_geometry_bbox

Entity = dict[str, Any]

# Joins an attribute IRI and its sub-attribute IRIs into one row `name`; the q compiler builds
# the same string for "attr.sub". A sub-attribute name is an expanded IRI, so it starts with a
# scheme and ":" right after the separator; a clash needs IRIs nobody writes.
SUB_ATTR_SEP = "."

# Which member of an attribute instance holds its value, per kind (docs/internals.md).
VALUE_MEMBER = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "ListRelationship": "objectList",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "JsonProperty": "json",
    "ListProperty": "valueList",
}
RELATIONSHIP_KINDS = frozenset({"Relationship", "ListRelationship"})


@dataclass(frozen=True)
class AttrRow:
    name: str
    dataset_id: str
    kind: str
    value_num: float | None = None
    value_text: str | None = None
    value_bool: int | None = None
    object: str | None = None
    observed_at: str | None = None
    value_json: str | None = None
    created_at: str | None = None  # the instance's system timestamps, when it carries them
    modified_at: str | None = None
    unit_code: str | None = None
    depth: int = 0  # 0 for an attribute, 1 for a sub-attribute, 2 for a sub-sub-attribute...


@dataclass(frozen=True)
class GeoBox:
    name: str
    dataset_id: str
    min_x: float
    max_x: float
    min_y: float
    max_y: float


def attr_path(*iris: str) -> str:
    """The `name` of a sub-attribute's rows: attr_path(attribute_iri, sub_iri, ...)."""
    return SUB_ATTR_SEP.join(iris)


def _plain(value: Any) -> Any:
    # A typed literal {"@type": "DateTime", "@value": "..."} compares as its @value.
    if isinstance(value, dict) and "@value" in value:
        return value["@value"]
    return value


def _columns(kind: str, value: Any) -> dict[str, Any]:
    """The column(s) of an AttrRow holding this value."""
    if kind in RELATIONSHIP_KINDS and isinstance(value, str):
        return {"object": value}
    scalar = value if kind == "JsonProperty" else _plain(value)  # JSON is never interpreted
    if isinstance(scalar, bool):  # before int: a bool is an int in Python
        return {"value_bool": int(scalar)}
    if isinstance(scalar, int | float):
        return {"value_num": float(scalar)}
    if isinstance(scalar, str):
        return {"value_text": scalar}
    return {"value_json": orjson.dumps(value).decode()}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _instance_rows(name: str, dataset_id: str, inst: dict[str, Any],
                   depth: int = 0) -> Iterator[AttrRow]:
    kind = inst["type"]
    yield AttrRow(name=name, dataset_id=dataset_id, kind=kind,
                  observed_at=inst.get("observedAt"),
                  created_at=_text(inst.get("createdAt")),
                  modified_at=_text(inst.get("modifiedAt")),
                  unit_code=_text(inst.get("unitCode")),
                  depth=depth,
                  **_columns(kind, inst.get(VALUE_MEMBER.get(kind, "value"))))
    for key, sub in inst.items():
        # Sub-attributes are keyed by expanded IRIs, which hold ":"; core members never do.
        if ":" in key and isinstance(sub, dict) and "type" in sub:
            yield from _instance_rows(attr_path(name, key), dataset_id, sub, depth + 1)


def attribute_rows(entity: Entity) -> list[AttrRow]:
    """Every derived attribute row of an entity in internal form."""
    return [row for name, instances in entity.get("attrs", {}).items()
            for inst in instances
            for row in _instance_rows(name, inst.get("datasetId", ""), inst)]


def geometry_bbox(geometry: Any) -> tuple[float, float, float, float] | None:
    """(min_x, max_x, min_y, max_y) of a GeoJSON geometry, the order of the geo_boxes columns;
    None if it has no positions."""
    box = query_geometry_bbox(geometry)
    return None if box is None else (box[0], box[2], box[1], box[3])


def geo_boxes(entity: Entity) -> list[GeoBox]:
    """One bounding box per GeoProperty instance with positions."""
    boxes = []
    for name, instances in entity.get("attrs", {}).items():
        for inst in instances:
            if inst.get("type") != "GeoProperty":
                continue
            box = geometry_bbox(inst.get("value"))
            if box is not None:
                boxes.append(GeoBox(name, inst.get("datasetId", ""), *box))
    return boxes
