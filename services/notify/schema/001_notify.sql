-- notify keeps the history of every notification: one row per (event,
-- channel), written pending by the consumers and moved on by the sender.
--
--   pending --delivered--> sent
--      |  \--refused for good (no usable email address, SMTP 5xx, webhook 4xx)--> failed
--      |   \--not delivered, attempts left--> pending (next_attempt_at = now + backoff)
--      \--not delivered at the last attempt--> dead
--   dead | failed --POST /notifications/retry--> pending (attempts start again)
CREATE TABLE notifications (
    id                   bigserial PRIMARY KEY,
    event_id             text NOT NULL,      -- the event's meta.event_id
    channel              text NOT NULL CHECK (channel IN ('log', 'email', 'webhook')),
    subject              text NOT NULL
                         CHECK (subject IN ('order.paid', 'order.failed', 'order.refunded')),
    order_id             text NOT NULL,
    customer_id          text NOT NULL,
    customer_email       text NOT NULL DEFAULT '',
    customer_name        text NOT NULL DEFAULT '',
    status               text NOT NULL,      -- the order's: paid, failed, refunded, partially_refunded
    total_cents          bigint NOT NULL,
    currency             text NOT NULL,
    reason               text NOT NULL DEFAULT '',  -- failures and refunds
    refund_id            text NOT NULL DEFAULT '',
    refund_cents         bigint NOT NULL DEFAULT 0, -- this refund
    refunded_total_cents bigint NOT NULL DEFAULT 0, -- refunded on the order so far
    occurred_at          timestamptz NOT NULL,
    state                text NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'sent', 'failed', 'dead')),
    attempts             int NOT NULL DEFAULT 0,    -- deliveries tried (counted at claim)
    last_error           text NOT NULL DEFAULT '',
    next_attempt_at      timestamptz NOT NULL DEFAULT now(), -- pending: when the sender may try
    created_at           timestamptz NOT NULL DEFAULT now(),
    sent_at              timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, channel)                  -- an event seen twice notifies once
);
-- The sender's claim: due pending notifications, oldest first.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_order ON notifications (order_id, id);
CREATE INDEX notifications_state ON notifications (state, id);
