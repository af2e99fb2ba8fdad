-- refund owns its projection of paid orders (from order.paid) and one row
-- per idempotency key: the request's one outcome.
--
--   refund.requested --rules pass, mock gateway--> processed
--                    --rules pass, http gateway--> pending --gateway 2xx--> processed
--                    |                                     \--gateway 4xx, or unavailable
--                    |                                        after max attempts--> rejected
--                    \--rules fail (unknown/unpaid order, amount, ...)--> rejected
--
-- An order's refunded_cents + pending_cents never exceed its paid total: a
-- pending refund holds its amount until the gateway answers, so concurrent
-- requests can never refund more than was paid.
CREATE TABLE paid_orders (
    order_id          text PRIMARY KEY,
    customer_id       text NOT NULL,
    customer_email    text NOT NULL DEFAULT '',
    customer_name     text NOT NULL DEFAULT '',
    currency          text NOT NULL,
    paid_total_cents  bigint NOT NULL CHECK (paid_total_cents >= 0),
    refunded_cents    bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    pending_cents     bigint NOT NULL DEFAULT 0 CHECK (pending_cents >= 0),
    paid_event_id     text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT paid_orders_not_over_refunded
        CHECK (refunded_cents + pending_cents <= paid_total_cents)
);

CREATE TABLE refunds (
    refund_id         text PRIMARY KEY,             -- UUIDv4; the gateway's Idempotency-Key
    idempotency_key   text NOT NULL UNIQUE,         -- one outcome per key
    order_id          text NOT NULL,
    requested_cents   bigint NOT NULL,              -- as asked (0 = the full remaining amount)
    amount_cents      bigint NOT NULL DEFAULT 0,    -- decided; 0 when rejected
    currency          text NOT NULL DEFAULT '',
    reason            text NOT NULL DEFAULT '',     -- why the customer gets money back
    restock           boolean NOT NULL DEFAULT false,
    lines             jsonb NOT NULL DEFAULT '[]',  -- [{"sku", "qty"}] to restock
    requested_by      text NOT NULL DEFAULT '',
    state             text NOT NULL CHECK (state IN ('pending', 'processed', 'rejected')),
    reject_reason     text NOT NULL DEFAULT '',
    refunded_total_cents bigint NOT NULL DEFAULT 0, -- processed: the order's refunded total after it
    full_refund       boolean NOT NULL DEFAULT false,
    gateway_ref       text NOT NULL DEFAULT '',
    attempts          int NOT NULL DEFAULT 0,       -- gateway requests sent (or claimed)
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    request_event_id  text NOT NULL,                -- the refund.requested (causation)
    created_at        timestamptz NOT NULL DEFAULT now(),
    decided_at        timestamptz
);
CREATE INDEX refunds_order ON refunds (order_id, created_at);
-- The worker's claim: due pending refunds, oldest first.
CREATE INDEX refunds_due ON refunds (next_attempt_at) WHERE state = 'pending';
