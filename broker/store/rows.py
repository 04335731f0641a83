"""Derived rows of an entity: what the query engine indexes. Pure; shared by every engine.

One row per attribute instance (and per sub-attribute, named "attr.sub"), with the value split
by JSON type into the column that can be indexed and compared natively, and one bounding box
per GeoProperty instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

Entity = dict[str, Any]


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


@dataclass(frozen=True)
class GeoBox:
    name: str
    dataset_id: str
    min_x: float
    max_x: float
    min_y: float
    max_y: float


def _scalar(kind: str, inst: dict[str, Any]) -> dict[str, Any]:
    if kind in ("Relationship", "ListRelationship"):
        obj = inst.get("object", inst.get("objectList"))
        if isinstance(obj, str):
            return {"object": obj}
        return {"value_json": orjson.dumps(obj).decode()}
    if kind == "VocabProperty":
        vocab = inst["vocab"]
        return {"value_text": vocab} if isinstance(vocab, str) else {
            "value_json": orjson.dumps(vocab).decode()}
    member = {"LanguageProperty": "languageMap", "JsonProperty": "json",
              "ListProperty": "valueList"}.get(kind, "value")
    value = inst.get(member)
    if isinstance(value, bool):
        return {"value_bool": int(value)}
    if isinstance(value, (int, float)):
        return {"value_num": float(value)}
    if isinstance(value, str):
        return {"value_text": value}
    return {"value_json": orjson.dumps(value).decode()}


def _rows(name: str, inst: dict[str, Any]) -> Iterator[AttrRow]:
    kind = inst["type"]
    yield AttrRow(name=name, dataset_id=inst.get("datasetId", ""), kind=kind,
                  observed_at=inst.get("observedAt"), **_scalar(kind, inst))
    for key, sub in inst.items():
        if ":" in key and isinstance(sub, dict) and "type" in sub:
            yield from _rows(f"{name}.{key}", sub)


def attribute_rows(entity: Entity) -> list[AttrRow]:
    return [row for name, instances in entity["attrs"].items()
            for inst in instances for row in _rows(name, inst)]


def _coordinates(value: Any) -> Iterator[tuple[float, float]]:
    if isinstance(value, list) and len(value) >= 2 and all(
        isinstance(c, (int, float)) for c in value[:2]
    ):
        yield float(value[0]), float(value[1])
    elif isinstance(value, list):
        for item in value:
            yield from _coordinates(item)


def geometry_bbox(geometry: Any) -> tuple[float, float, float, float] | None:
    """(min_x, max_x, min_y, max_y) of a GeoJSON geometry, or None if it has no positions."""
    if not isinstance(geometry, dict):
        return None
    if geometry.get("type") == "GeometryCollection":
        points = [p for g in geometry.get("geometries", ())
                  for p in _coordinates(g.get("coordinates") if isinstance(g, dict) else None)]
    else:
        points = list(_coordinates(geometry.get("coordinates")))
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), max(xs), min(ys), max(ys)


def geo_boxes(entity: Entity) -> list[GeoBox]:
    boxes = []
    for name, instances in entity["attrs"].items():
        for inst in instances:
            if inst.get("type") != "GeoProperty":
                continue
            box = geometry_bbox(inst.get("value"))
            if box is not None:
                boxes.append(GeoBox(name, inst.get("datasetId", ""), *box))
    return boxes
