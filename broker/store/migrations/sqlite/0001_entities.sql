-- Entities as whole documents, plus derived rows that the query engine compiles q and geo
-- queries against. Derived rows are rewritten in the same transaction as the document.
CREATE TABLE tenants (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
) WITHOUT ROWID;

-- A rowid table: the integer rowid keys the derived rows and the R*Tree compactly.
CREATE TABLE entities (
    rid         INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    doc         TEXT NOT NULL,
    UNIQUE (tenant, id)
);

CREATE TABLE entity_types (
    rid     INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    tenant  TEXT NOT NULL,
    type    TEXT NOT NULL,
    PRIMARY KEY (rid, type)
) WITHOUT ROWID;
CREATE INDEX entity_types_by_type ON entity_types (tenant, type, rid);

CREATE TABLE attrs (
    rid         INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    dataset_id  TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL,
    value_num   REAL,
    value_text  TEXT,
    value_bool  INTEGER,
    object      TEXT,
    observed_at TEXT,
    value_json  TEXT
);
CREATE INDEX attrs_by_entity ON attrs (rid);
CREATE INDEX attrs_by_num ON attrs (tenant, name, value_num);
CREATE INDEX attrs_by_text ON attrs (tenant, name, value_text);
CREATE INDEX attrs_by_object ON attrs (tenant, name, object);

-- Bounding boxes of GeoProperty values; geo-queries prefilter here, shapely decides exactly.
CREATE VIRTUAL TABLE geo_boxes USING rtree (gid, min_x, max_x, min_y, max_y);
CREATE TABLE geo_index (
    gid         INTEGER PRIMARY KEY,
    rid         INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    dataset_id  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX geo_index_by_entity ON geo_index (rid);

CREATE TABLE contexts (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    kind          TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    hits          INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX contexts_by_url ON contexts (url);
