-- Entities as whole documents, plus derived rows (broker/store/rows.py) that the query engine
-- compiles q, scopeQ and geo queries against. The engine rewrites the derived rows in the same
-- transaction as the document. Lines "-- @if FEATURE" / "-- @else" / "-- @end" pick SQL by what
-- this SQLite offers (broker/store/migrate.py).

CREATE TABLE tenants (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
) WITHOUT ROWID;
-- The default tenant always exists.
INSERT INTO tenants VALUES ('', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

-- A rowid table, not WITHOUT ROWID: every derived row and index entry refers to its entity by
-- the 8-byte rid instead of repeating (tenant, id), two strings of often 50+ bytes, and the
-- R*Tree needs integer keys anyway. The UNIQUE index serves lookups by id (and id prefixes).
CREATE TABLE entities (
    rid         INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants(name),
    id          TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    doc         TEXT NOT NULL,  -- the entity in internal form, JSON
    UNIQUE (tenant, id)
);

-- WITHOUT ROWID tables declare their key columns first: SQLite 3.40's integrity_check reports
-- false NULLs in a non-key column declared between key columns.
CREATE TABLE entity_types (
    rid     INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    type    TEXT NOT NULL,
    tenant  TEXT NOT NULL,
    PRIMARY KEY (rid, type)
) WITHOUT ROWID;
CREATE INDEX entity_types_by_type ON entity_types (tenant, type, rid);

-- scopeQ: "/a/b" is an equality, "/a/#" a prefix range, both on this index.
CREATE TABLE entity_scopes (
    rid     INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    scope   TEXT NOT NULL,
    tenant  TEXT NOT NULL,
    PRIMARY KEY (rid, scope)
) WITHOUT ROWID;
CREATE INDEX entity_scopes_by_scope ON entity_scopes (tenant, scope, rid);

CREATE TABLE attrs (
    rid         INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,  -- attribute IRI, or a sub-attribute path (rows.attr_path)
    dataset_id  TEXT NOT NULL DEFAULT '',  -- '' is the default instance
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

-- Bounding boxes of GeoProperty values: geo-queries prefilter here, shapely decides exactly.
-- Both forms take the same SQL: "WHERE max_x >= :min_x AND min_x <= :max_x AND ...".
-- @if rtree
-- R*Tree stores 32-bit floats, rounding minima down and maxima up, so it never misses a box.
CREATE VIRTUAL TABLE geo_boxes USING rtree (gid, min_x, max_x, min_y, max_y);
-- @else
CREATE TABLE geo_boxes (
    gid     INTEGER PRIMARY KEY,
    min_x   REAL NOT NULL,
    max_x   REAL NOT NULL,
    min_y   REAL NOT NULL,
    max_y   REAL NOT NULL
);
CREATE INDEX geo_boxes_by_x ON geo_boxes (min_x, max_x);
CREATE INDEX geo_boxes_by_y ON geo_boxes (min_y, max_y);
-- @end
-- What each box belongs to. A virtual table cannot cascade, so the engine deletes boxes itself.
CREATE TABLE geo_index (
    gid         INTEGER PRIMARY KEY,
    rid         INTEGER NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    dataset_id  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX geo_index_by_entity ON geo_index (rid);
CREATE INDEX geo_index_by_name ON geo_index (tenant, name);

-- JSON-LD @contexts held by the broker (clause 5.13).
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
