-- The PostgreSQL/PostGIS layout: the same tables as migrations/sqlite (documents plus derived
-- rows from broker/store/rows.py), so one query design serves both engines.
--
-- Tenants are an indexed `tenant` column, not a schema per tenant: one set of tables means one
-- migration run, one set of prepared statements per connection and no catalogue growth per
-- tenant (a city may hold hundreds); every index leads with `tenant`, and every statement the
-- engine compiles filters on it, so one tenant never reads another's rows.
--
-- Text columns compare with COLLATE "C" (bytewise), as SQLite does: q ranges and scopeQ
-- prefix ranges must order strings the same on both engines, whatever the database locale.

CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE tenants (
    name        TEXT COLLATE "C" PRIMARY KEY,
    created_at  TEXT NOT NULL
);
INSERT INTO tenants VALUES ('', to_char(now() AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));

-- `doc` is `json`, not `jsonb`: it keeps the document byte for byte (attribute order as the
-- client sent it) and costs no conversion on write or read; queries use the derived rows.
CREATE TABLE entities (
    rid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant      TEXT COLLATE "C" NOT NULL REFERENCES tenants(name),
    id          TEXT COLLATE "C" NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    modified_at TEXT COLLATE "C" NOT NULL,
    doc         JSON NOT NULL,
    UNIQUE (tenant, id)
);

CREATE TABLE entity_types (
    rid     BIGINT NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    type    TEXT COLLATE "C" NOT NULL,
    tenant  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (rid, type)
);
CREATE INDEX entity_types_by_type ON entity_types (tenant, type, rid);

CREATE TABLE entity_scopes (
    rid     BIGINT NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    scope   TEXT COLLATE "C" NOT NULL,
    tenant  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (rid, scope)
);
CREATE INDEX entity_scopes_by_scope ON entity_scopes (tenant, scope, rid);

CREATE TABLE attrs (
    rid         BIGINT NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    tenant      TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    dataset_id  TEXT COLLATE "C" NOT NULL DEFAULT '',
    kind        TEXT COLLATE "C" NOT NULL,
    value_num   DOUBLE PRECISION,
    value_text  TEXT COLLATE "C",
    value_bool  INTEGER,  -- 0/1 as in SQLite, so literals bind the same on both engines
    object      TEXT COLLATE "C",
    observed_at TEXT COLLATE "C",
    value_json  JSONB
);
CREATE INDEX attrs_by_entity ON attrs (rid);
CREATE INDEX attrs_by_num ON attrs (tenant, name, value_num);
CREATE INDEX attrs_by_text ON attrs (tenant, name, value_text);
CREATE INDEX attrs_by_object ON attrs (tenant, name, object);

-- One row per GeoProperty instance with its bounding box as a PostGIS geometry under a GiST
-- index: geo-queries prefilter with `&&` here and geo_eval decides exactly on the candidates,
-- as in SQLite, so both engines answer alike (see broker/store/postgres_query.py).
CREATE TABLE geo_index (
    gid         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rid         BIGINT NOT NULL REFERENCES entities(rid) ON DELETE CASCADE,
    tenant      TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    dataset_id  TEXT COLLATE "C" NOT NULL DEFAULT '',
    bbox        geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX geo_index_by_entity ON geo_index (rid);
CREATE INDEX geo_index_by_box ON geo_index USING gist (bbox);

CREATE TABLE contexts (
    id            TEXT COLLATE "C" PRIMARY KEY,
    url           TEXT COLLATE "C" NOT NULL,
    kind          TEXT COLLATE "C" NOT NULL,
    body          JSON NOT NULL,
    created_at    TEXT COLLATE "C" NOT NULL,
    last_used_at  TEXT COLLATE "C",
    hits          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX contexts_by_url ON contexts (url);

-- Once-only work shared by replicas (broker/store/leases.py): a named lease, held by one
-- holder until it expires; expiry is database time, so host clocks never disagree about it.
-- `token` grows at every change of holder: a fencing token for work done under the lease.
CREATE TABLE leases (
    name        TEXT COLLATE "C" PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    token       BIGINT NOT NULL DEFAULT 1
);
