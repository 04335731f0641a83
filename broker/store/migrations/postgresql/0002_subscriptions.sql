-- Subscriptions (clauses 5.8, 5.11), their delivery state and the notification outbox
-- (broker/subscriptions/outbox.py): the tables of migrations/sqlite/0003_subscriptions.sql.
-- Times are epoch seconds (DOUBLE PRECISION).
--
-- JSON columns are `json`, not `jsonb`, as entities.doc: jsonb reorders object keys, and the
-- entities kept in a change body must render in their own attribute order; nothing here is
-- queried inside the JSON either.

-- seq: creation order (list_subscriptions pages oldest first).
CREATE TABLE subscriptions (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant  TEXT COLLATE "C" NOT NULL REFERENCES tenants(name),
    id      TEXT COLLATE "C" NOT NULL,
    record  JSON NOT NULL,  -- broker.subscriptions.subscription.to_record()
    UNIQUE (tenant, id)
);

-- One counter for every tenant's subscriptions, bumped by each create, update and delete in
-- its transaction: a write observer reloads them when the version it holds is older.
CREATE TABLE subscriptions_version (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    version BIGINT NOT NULL
);
INSERT INTO subscriptions_version (one, version) VALUES (1, 0);

-- DeliveryState (timesSent, lastSuccess...) and the periodic tick, one row per subscription,
-- created and deleted with it. Throttled writes lock it (FOR UPDATE) while they pick a due time.
CREATE TABLE subscription_delivery (
    tenant            TEXT COLLATE "C" NOT NULL,
    subscription_id   TEXT COLLATE "C" NOT NULL,
    times_sent        BIGINT NOT NULL DEFAULT 0,
    times_failed      BIGINT NOT NULL DEFAULT 0,
    last_notification DOUBLE PRECISION,
    last_success      DOUBLE PRECISION,
    last_failure      DOUBLE PRECISION,
    periodic_last     DOUBLE PRECISION,  -- compare and set: one replica wins each periodic tick
    PRIMARY KEY (tenant, subscription_id)
);

-- The changes of one write, stored once however many notifications they fire.
CREATE TABLE notification_changes (
    id    BIGSERIAL PRIMARY KEY,
    body  JSON NOT NULL,     -- [outbox.change_to_json(c), ...]
    refs  INTEGER NOT NULL   -- outbox rows still pointing here; the row goes at 0
);

CREATE TABLE notification_outbox (
    id               BIGSERIAL PRIMARY KEY,
    tenant           TEXT COLLATE "C" NOT NULL,
    subscription_id  TEXT COLLATE "C" NOT NULL,
    notification_id  TEXT COLLATE "C" NOT NULL UNIQUE,  -- kept on retry: receivers dedup by it
    endpoint_key     TEXT COLLATE "C" NOT NULL,         -- scheme://host:port: per receiver
    message          JSON,                  -- Outgoing.to_json(), or NULL for a draft
    draft            JSON,                  -- [[trigger, change index], ...]
    change_id        BIGINT REFERENCES notification_changes (id),
    created_at       DOUBLE PRECISION NOT NULL,
    due              DOUBLE PRECISION NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    first_attempt_at DOUBLE PRECISION,
    lease_owner      TEXT,
    lease_until      DOUBLE PRECISION,
    state            TEXT NOT NULL DEFAULT 'pending',  -- 'pending' | 'failed'
    last_error       TEXT
);
-- claim: due pending rows, oldest due first.
CREATE INDEX notification_outbox_due ON notification_outbox (state, due);
-- throttling (latest due of a subscription's pending rows) and delete_subscription.
CREATE INDEX notification_outbox_subscription
    ON notification_outbox (tenant, subscription_id, state, due);
-- the foreign key's child side: GC of notification_changes without a scan.
CREATE INDEX notification_outbox_change ON notification_outbox (change_id);
-- renew: the rows one dispatcher holds (few), without reading every row of a backlog.
CREATE INDEX notification_outbox_lease ON notification_outbox (lease_owner)
    WHERE lease_owner IS NOT NULL;

-- delivered and discard in one round trip: delete an outbox row, count the success on its
-- subscription (p_sent_at given), release its change and drop the change at zero refs. Each
-- statement here sees the ones before it (and a concurrent release waits on the change's row
-- lock, then decrements after us), which one statement with CTEs would not. Locks are taken
-- in the order every transaction here takes them: outbox row, delivery row, change row.
CREATE FUNCTION cetate_outbox_remove(p_id bigint, p_sent_at double precision) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    remaining integer;
BEGIN
    DELETE FROM notification_outbox WHERE id = p_id
        RETURNING tenant, subscription_id, change_id INTO r;
    IF NOT FOUND THEN
        RETURN false;  -- gone already: another claimer delivered it, or its subscription went
    END IF;
    IF p_sent_at IS NOT NULL THEN
        UPDATE subscription_delivery SET times_sent = times_sent + 1,
               last_notification = p_sent_at, last_success = p_sent_at
         WHERE tenant = r.tenant AND subscription_id = r.subscription_id;
    END IF;
    IF r.change_id IS NOT NULL THEN
        UPDATE notification_changes SET refs = refs - 1 WHERE id = r.change_id
            RETURNING refs INTO remaining;
        IF remaining <= 0 THEN
            DELETE FROM notification_changes WHERE id = r.change_id;
        END IF;
    END IF;
    RETURN true;
END $$;
