-- Runtime tables every service has in its own schema (search_path is set to it).

-- Transactional outbox: events written in the same transaction as the state
-- change; the relay publishes them with Nats-Msg-Id = event_id, then deletes them.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    subject     text NOT NULL,
    msg_type    text NOT NULL,
    event_id    text NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Wakes the relay once per inserting statement (delivered at commit).
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Inbox: every consumed event id, recorded in the transaction that applied it.
CREATE TABLE inbox (
    event_id    text PRIMARY KEY,
    seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_seen_at ON inbox (seen_at);

-- Messages that could not be applied, kept with the reason for an operator.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    subject     text NOT NULL,
    event_id    text NOT NULL,
    headers     text NOT NULL DEFAULT '',
    payload     bytea NOT NULL,
    reason      text NOT NULL,
    attempts    int NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE INDEX dead_letters_open ON dead_letters (id) WHERE resolved_at IS NULL;
