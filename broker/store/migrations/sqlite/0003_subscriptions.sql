-- Subscriptions (clauses 5.8, 5.11), their delivery state and the notification outbox
-- (broker/subscriptions/outbox.py). Times are epoch seconds (REAL).

-- seq: creation order (list_subscriptions pages oldest first).
CREATE TABLE subscriptions (
  seq    INTEGER PRIMARY KEY,
  tenant TEXT NOT NULL,
  id     TEXT NOT NULL,
  record TEXT NOT NULL,  -- broker.subscriptions.subscription.to_record(), as JSON
  UNIQUE (tenant, id)
);

-- One counter for every tenant's subscriptions, bumped by each create, update and delete in
-- its transaction: a write observer reloads them when the version it holds is older.
CREATE TABLE subscriptions_version (
  one     INTEGER PRIMARY KEY CHECK (one = 1),
  version INTEGER NOT NULL
);
INSERT INTO subscriptions_version (one, version) VALUES (1, 0);

-- DeliveryState (timesSent, lastSuccess...) and the periodic tick, one row per subscription,
-- created and deleted with it.
CREATE TABLE subscription_delivery (
  tenant            TEXT NOT NULL,
  subscription_id   TEXT NOT NULL,
  times_sent        INTEGER NOT NULL DEFAULT 0,
  times_failed      INTEGER NOT NULL DEFAULT 0,
  last_notification REAL,
  last_success      REAL,
  last_failure      REAL,
  periodic_last     REAL,  -- compare and set: one process wins each periodic tick
  PRIMARY KEY (tenant, subscription_id)
);

-- The changes of one write, stored once however many notifications they fire.
CREATE TABLE notification_changes (
  id   INTEGER PRIMARY KEY,
  body TEXT NOT NULL,     -- [outbox.change_to_json(c), ...]
  refs INTEGER NOT NULL   -- outbox rows still pointing here; the row goes at 0
);

CREATE TABLE notification_outbox (
  id               INTEGER PRIMARY KEY,
  tenant           TEXT NOT NULL,
  subscription_id  TEXT NOT NULL,
  notification_id  TEXT NOT NULL UNIQUE,  -- kept on retry: receivers drop duplicates by it
  endpoint_key     TEXT NOT NULL,         -- scheme://host:port: per-receiver isolation
  message          TEXT,                  -- Outgoing.to_json(), or NULL for a draft
  draft            TEXT,                  -- [[trigger, change index], ...]
  change_id        INTEGER REFERENCES notification_changes (id),
  created_at       REAL NOT NULL,
  due              REAL NOT NULL,
  attempt          INTEGER NOT NULL DEFAULT 0,
  first_attempt_at REAL,
  lease_owner      TEXT,
  lease_until      REAL,
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
