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
    value_json  JSONB,
    created_at  TEXT COLLATE "C",  -- the instance's system timestamps, when it has them
    modified_at TEXT COLLATE "C",
    unit_code   TEXT COLLATE "C",
    depth       INTEGER NOT NULL DEFAULT 0  -- 0: an attribute; 1+: a sub-attribute
);
CREATE INDEX attrs_by_entity ON attrs (rid);
CREATE INDEX attrs_by_num ON attrs (tenant, name, value_num);
CREATE INDEX attrs_by_text ON attrs (tenant, name, value_text);
CREATE INDEX attrs_by_object ON attrs (tenant, name, object);
-- Discovery (/types, /attributes): names, kinds and counts per tenant from this index alone.
CREATE INDEX attrs_by_kind ON attrs (tenant, depth, name, kind);

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

-- The q language's date-time literals compare as instants (broker/query/qlang.py temporal_key,
-- which SQLite registers as the function q_temporal): these read text as Python's
-- datetime.fromisoformat does (extended format; no offset means UTC; fractions beyond
-- microseconds cut, not rounded) and give the same keys, or NULL for what is not one.
CREATE FUNCTION q_instant(t text) RETURNS timestamp
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m text[];
    digits text;
    moment timestamp;
BEGIN
    m := regexp_match(t, '^(\d{4})-(\d{2})-(\d{2})(?:.(\d{2})(?::(\d{2})(?::(\d{2})'
                         '(?:[.,](\d+))?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$');
    IF m IS NULL THEN
        RETURN NULL;
    END IF;
    moment := make_timestamp(m[1]::int, m[2]::int, m[3]::int, coalesce(m[4], '0')::int,
                             coalesce(m[5], '0')::int, coalesce(m[6], '0')::int
                             + coalesce(('0.' || left(m[7], 6))::float8, 0));
    IF m[8] IS NOT NULL AND m[8] <> 'Z' THEN
        digits := replace(substr(m[8], 2), ':', '');
        moment := moment - (CASE left(m[8], 1) WHEN '-' THEN -1 ELSE 1 END)
                  * make_interval(hours => left(digits, 2)::int,
                                  mins => coalesce(nullif(substr(digits, 3, 2), ''), '0')::int);
    END IF;
    RETURN moment;
EXCEPTION WHEN others THEN  -- an impossible date or time (2026-02-30, 25:00)
    RETURN NULL;
END $$;

-- Keys of kind 'datetime' (UTC, microseconds, fixed width: text order is time order) and
-- 'date' (the UTC date), as temporal_key gives them.
CREATE FUNCTION q_temporal(kind text, t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN kind = 'datetime' THEN to_char(q_instant(t), 'YYYY-MM-DD"T"HH24:MI:SS.US')
        WHEN kind = 'date' AND length(t) = 10 THEN
            CASE WHEN t ~ '^\d{4}-\d{2}-\d{2}$' THEN to_char(q_instant(t), 'YYYY-MM-DD') END
        WHEN kind = 'date' THEN to_char(q_instant(t), 'YYYY-MM-DD')
    END
$$;

-- Keys of kind 'time': seconds from midnight UTC (a time with an offset is moved by it; a
-- date-time gives its UTC time of day), as temporal_key gives them.
CREATE FUNCTION q_seconds(t text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m text[];
    digits text;
    seconds double precision;
BEGIN
    IF strpos(t, 'T') > 0 THEN
        RETURN extract(epoch FROM q_instant(t)::time);
    END IF;
    m := regexp_match(t, '^(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?'
                         '(Z|[+-]\d{2}(?::?\d{2})?)?$');
    IF m IS NULL OR m[1]::int > 23 OR coalesce(m[2], '0')::int > 59
            OR coalesce(m[3], '0')::int > 59 THEN
        RETURN NULL;
    END IF;
    seconds := m[1]::int * 3600 + coalesce(m[2], '0')::int * 60 + coalesce(m[3], '0')::int
               + coalesce(('0.' || left(m[4], 6))::float8, 0);
    IF m[5] IS NOT NULL AND m[5] <> 'Z' THEN
        digits := replace(substr(m[5], 2), ':', '');
        seconds := seconds - (CASE left(m[5], 1) WHEN '-' THEN -1 ELSE 1 END)
                   * (left(digits, 2)::int * 3600
                      + coalesce(nullif(substr(digits, 3, 2), ''), '0')::int * 60);
    END IF;
    RETURN seconds;
END $$;

-- What SQLite's json_each gives for a value: an array's elements, a scalar itself; an object
-- (or nothing) gives no rows here, as the q compiler never looks into objects this way.
CREATE FUNCTION q_elements(j jsonb) RETURNS SETOF jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT e FROM jsonb_array_elements(CASE WHEN jsonb_typeof(j) = 'array' THEN j END) e
    UNION ALL
    SELECT j WHERE jsonb_typeof(j) NOT IN ('array', 'object')
$$;

-- The derived rows of a group of written entities, in one call (one round trip per write or
-- per batch, however many rows): each argument is one column, every row's `rid` given.
CREATE FUNCTION cetate_put_derived(
    p_tenant text,
    type_rid bigint[], type_name text[],
    scope_rid bigint[], scope_name text[],
    a_rid bigint[], a_name text[], a_dataset text[], a_kind text[], a_num float8[],
    a_text text[], a_bool int[], a_object text[], a_observed text[], a_json jsonb[],
    a_created text[], a_modified text[], a_unit text[], a_depth int[],
    g_rid bigint[], g_name text[], g_dataset text[],
    g_x0 float8[], g_x1 float8[], g_y0 float8[], g_y1 float8[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO entity_types (rid, tenant, type)
    SELECT r, p_tenant, n FROM unnest(type_rid, type_name) AS u(r, n);
    INSERT INTO entity_scopes (rid, tenant, scope)
    SELECT r, p_tenant, s FROM unnest(scope_rid, scope_name) AS u(r, s);
    INSERT INTO attrs (rid, tenant, name, dataset_id, kind, value_num, value_text, value_bool,
                       object, observed_at, value_json, created_at, modified_at, unit_code, depth)
    SELECT r, p_tenant, n, d, k, num, txt, b, o, obs, j, c, m, unit, dep
    FROM unnest(a_rid, a_name, a_dataset, a_kind, a_num, a_text, a_bool, a_object, a_observed,
                a_json, a_created, a_modified, a_unit, a_depth)
         AS u(r, n, d, k, num, txt, b, o, obs, j, c, m, unit, dep);
    INSERT INTO geo_index (rid, tenant, name, dataset_id, bbox)
    SELECT r, p_tenant, n, d, ST_MakeEnvelope(x0, y0, x1, y1, 4326)
    FROM unnest(g_rid, g_name, g_dataset, g_x0, g_x1, g_y0, g_y1) AS u(r, n, d, x0, x1, y0, y1);
$$;
