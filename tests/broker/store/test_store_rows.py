"""broker/store/rows.py: entity (internal form) -> derived rows, tested as the pure function."""

from __future__ import annotations

from typing import Any

import pytest

from broker.store.rows import AttrRow, GeoBox, attr_path, attribute_rows, geo_boxes, geometry_bbox

D = "https://uri.etsi.org/ngsi-ld/default-context/"
OBSERVED_BY = D + "observedBy"


def entity(**attrs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "urn:ngsi-ld:Thing:1", "type": [D + "Thing"],
            "createdAt": "2026-11-23T10:00:00.000Z", "modifiedAt": "2026-11-23T10:00:00.000Z",
            "attrs": {D + name: instances for name, instances in attrs.items()}}


def only_row(instance: dict[str, Any]) -> AttrRow:
    (row,) = attribute_rows(entity(a=[instance]))
    return row


@pytest.mark.parametrize(("instance", "columns"), [
    ({"type": "Property", "value": 21.5}, {"value_num": 21.5}),
    ({"type": "Property", "value": 3}, {"value_num": 3.0}),
    ({"type": "Property", "value": True}, {"value_bool": 1}),
    ({"type": "Property", "value": False}, {"value_bool": 0}),
    ({"type": "Property", "value": "on"}, {"value_text": "on"}),
    ({"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-23T10:00:00Z"}},
     {"value_text": "2026-11-23T10:00:00Z"}),
    ({"type": "Property", "value": {"b": [1, 2]}}, {"value_json": '{"b":[1,2]}'}),
    ({"type": "Property", "value": [1, "x"]}, {"value_json": '[1,"x"]'}),
    ({"type": "Relationship", "object": "urn:ngsi-ld:Cabinet:7"},
     {"object": "urn:ngsi-ld:Cabinet:7"}),
    ({"type": "Relationship", "object": ["urn:a", "urn:b"]}, {"value_json": '["urn:a","urn:b"]'}),
    ({"type": "ListRelationship", "objectList": ["urn:a"]}, {"value_json": '["urn:a"]'}),
    ({"type": "VocabProperty", "vocab": D + "Red"}, {"value_text": D + "Red"}),
    ({"type": "VocabProperty", "vocab": [D + "Red"]}, {"value_json": f'["{D}Red"]'}),
    ({"type": "LanguageProperty", "languageMap": {"ro": "Strada", "en": "Street"}},
     {"value_json": '{"ro":"Strada","en":"Street"}'}),
    ({"type": "JsonProperty", "json": {"@value": 1}}, {"value_json": '{"@value":1}'}),
    ({"type": "JsonProperty", "json": 7}, {"value_num": 7.0}),
    ({"type": "ListProperty", "valueList": [1, 2]}, {"value_json": "[1,2]"}),
    ({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}},
     {"value_json": '{"type":"Point","coordinates":[1,2]}'}),
])
def test_each_kind_lands_in_its_column(instance: dict[str, Any], columns: dict[str, Any]) -> None:
    row = only_row(instance)
    assert (row.name, row.kind, row.dataset_id) == (D + "a", instance["type"], "")
    values = {k: getattr(row, k) for k in
              ("value_num", "value_text", "value_bool", "object", "value_json")}
    assert {k: v for k, v in values.items() if v is not None} == columns


def test_instances_sub_attributes_and_observed_at() -> None:
    rows = attribute_rows(entity(speed=[
        {"type": "Property", "value": 50, "observedAt": "2026-11-23T09:00:00.000Z",
         "unitCode": "KMH",
         OBSERVED_BY: {"type": "Relationship", "object": "urn:ngsi-ld:Radar:1",
                       D + "calibrated": {"type": "Property", "value": True}}},
        {"type": "Property", "value": 48, "datasetId": "urn:ds:gps"},
    ]))
    speed = D + "speed"
    assert rows == [
        AttrRow(speed, "", "Property", value_num=50.0, observed_at="2026-11-23T09:00:00.000Z",
                unit_code="KMH"),
        AttrRow(attr_path(speed, OBSERVED_BY), "", "Relationship",
                object="urn:ngsi-ld:Radar:1", depth=1),
        AttrRow(attr_path(speed, OBSERVED_BY, D + "calibrated"), "", "Property", value_bool=1,
                depth=2),
        AttrRow(speed, "urn:ds:gps", "Property", value_num=48.0),
    ]
    assert attr_path(speed, OBSERVED_BY) == f"{speed}.{OBSERVED_BY}"  # what the q compiler uses


def test_sub_attributes_keep_their_instance_dataset() -> None:
    rows = attribute_rows(entity(a=[{"type": "Property", "value": 1, "datasetId": "urn:ds:1",
                                     D + "s": {"type": "Property", "value": 2}}]))
    assert [r.dataset_id for r in rows] == ["urn:ds:1", "urn:ds:1"]


def test_no_attributes_no_rows() -> None:
    assert attribute_rows(entity()) == []
    assert geo_boxes(entity()) == []


@pytest.mark.parametrize(("geometry", "box"), [
    ({"type": "Point", "coordinates": [23.79, 44.31]}, (23.79, 23.79, 44.31, 44.31)),
    ({"type": "Point", "coordinates": [23.79, 44.31, 90.0]}, (23.79, 23.79, 44.31, 44.31)),
    ({"type": "LineString", "coordinates": [[0, 5], [3, -1]]}, (0, 3, -1, 5)),
    ({"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 3], [0, 0]]]}, (0, 2, 0, 3)),
    ({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]],
                                              [[[5, 5], [6, 5], [6, 7], [5, 5]]]]},
     (0, 6, 0, 7)),
    ({"type": "GeometryCollection", "geometries": [
        {"type": "Point", "coordinates": [-1, 2]},
        {"type": "GeometryCollection", "geometries": [
            {"type": "Point", "coordinates": [4, -3]}]}]}, (-1, 4, -3, 2)),
])
def test_bounding_boxes(geometry: dict[str, Any], box: tuple[float, ...]) -> None:
    assert geometry_bbox(geometry) == box


@pytest.mark.parametrize("geometry", [
    {"type": "Point"}, {"type": "Point", "coordinates": []}, "not a geometry",
    {"type": "GeometryCollection", "geometries": []}, None,
])
def test_no_positions_no_box(geometry: Any) -> None:
    assert geometry_bbox(geometry) is None


def test_geo_boxes_per_geoproperty_instance() -> None:
    e = entity(
        location=[{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}},
                  {"type": "GeoProperty", "datasetId": "urn:ds:b",
                   "value": {"type": "Point", "coordinates": [3, 4]}}],
        notGeo=[{"type": "Property", "value": {"type": "Point", "coordinates": [9, 9]}}],
    )
    assert geo_boxes(e) == [GeoBox(D + "location", "", 1, 1, 2, 2),
                            GeoBox(D + "location", "urn:ds:b", 3, 3, 4, 4)]


def test_system_timestamps_of_instances() -> None:
    (row,) = attribute_rows(entity(a=[{"type": "Property", "value": 1,
                                       "createdAt": "2026-11-23T10:00:00.000Z",
                                       "modifiedAt": "2026-11-24T10:00:00.000Z"}]))
    assert (row.created_at, row.modified_at, row.depth) == (
        "2026-11-23T10:00:00.000Z", "2026-11-24T10:00:00.000Z", 0)


def test_migration_0002_backfills_rows_written_before_it(tmp_path: Any) -> None:
    """Rows from a version-1 database get depth, createdAt, modifiedAt and unitCode."""
    import sqlite3

    import orjson

    from broker.store.migrate import available, migrate_sqlite, select_sql, sqlite_features

    conn = sqlite3.connect(str(tmp_path / "v1.db"), isolation_level=None)
    first = available("sqlite")[0]
    assert first.version == 1
    conn.executescript(select_sql(first.sql, sqlite_features()))
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT "
                 "NULL, applied_at TEXT NOT NULL)")
    conn.execute("INSERT INTO schema_migrations VALUES (1, ?, 'then')", (first.name,))
    e = entity(speed=[{"type": "Property", "value": 50, "unitCode": "KMH",
                       "createdAt": "2026-11-23T10:00:00.000Z",
                       "modifiedAt": "2026-11-23T11:00:00.000Z",
                       OBSERVED_BY: {"type": "Relationship", "object": "urn:ngsi-ld:Radar:1"}},
                      {"type": "Property", "value": 48, "datasetId": "urn:ds:gps",
                       "createdAt": "2026-11-24T10:00:00.000Z"}])
    rid = conn.execute("INSERT INTO entities (tenant, id, created_at, modified_at, doc) VALUES "
                       "('', ?, 't', 't', ?)", (e["id"], orjson.dumps(e).decode())).lastrowid
    for row in attribute_rows(e):  # as the version-1 writer stored them
        conn.execute("INSERT INTO attrs (rid, tenant, name, dataset_id, kind, value_num, object)"
                     " VALUES (?, '', ?, ?, ?, ?, ?)",
                     (rid, row.name, row.dataset_id, row.kind, row.value_num, row.object))
    assert migrate_sqlite(conn) == [m.version for m in available("sqlite")[1:]]
    got = conn.execute("SELECT name, dataset_id, depth, created_at, modified_at, unit_code "
                       "FROM attrs ORDER BY rowid").fetchall()
    speed = D + "speed"
    assert got == [
        (speed, "", 0, "2026-11-23T10:00:00.000Z", "2026-11-23T11:00:00.000Z", "KMH"),
        (attr_path(speed, OBSERVED_BY), "", 1, None, None, None),
        (speed, "urn:ds:gps", 0, "2026-11-24T10:00:00.000Z", None, None),
    ]
    conn.close()
