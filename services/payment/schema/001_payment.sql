-- payment owns one payment per order: the charge of its total, decided by the
-- mock gateway at once, or submitted to a real gateway and settled by its
-- signed callback.
--
--   pending --charge accepted (2xx)--> submitted --callback--> succeeded | failed
--      |  \--refused (4xx), or unavailable after max attempts--> failed
--      \--callback before the charger recorded the 2xx--> succeeded | failed
CREATE TABLE payments (
    payment_id        text PRIMARY KEY,          -- UUIDv4; the gateway's Idempotency-Key
    order_id          text NOT NULL UNIQUE,      -- one charge per order, whatever redelivers
    amount_cents      bigint NOT NULL CHECK (amount_cents >= 0),
    currency          text NOT NULL,
    status            text NOT NULL
                      CHECK (status IN ('pending', 'submitted', 'succeeded', 'failed')),
    attempts          int NOT NULL DEFAULT 0,    -- charge requests sent (or claimed) so far
    gateway_ref       text NOT NULL DEFAULT '',
    reason            text NOT NULL DEFAULT '',  -- why it failed; '' otherwise
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),  -- pending: when the charger may send
    reserved_event_id text NOT NULL,             -- the stock.reserved that caused it (causation)
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- The charger's claim: due pending payments, oldest first.
CREATE INDEX payments_due ON payments (next_attempt_at) WHERE status = 'pending';
