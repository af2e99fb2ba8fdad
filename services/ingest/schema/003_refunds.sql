-- Refunds: paid -> partially_refunded -> refunded, from refund.processed.
-- order_refunds keeps every refund applied (once per refund id, whatever
-- event id it arrives under), and the order keeps the sum.
--
-- The new constraints are NOT VALID: the status check replaces a stricter
-- one and refunded_cents starts at 0, so every existing row satisfies both,
-- and a large orders table is not scanned under an exclusive lock. New and
-- updated rows are checked as usual.
ALTER TABLE orders
    DROP CONSTRAINT orders_status_valid,
    ADD CONSTRAINT orders_status_valid CHECK (status IN ('created', 'reserved', 'paid', 'failed',
                                                        'partially_refunded', 'refunded')) NOT VALID,
    ADD COLUMN refunded_cents bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT orders_refunded_not_negative CHECK (refunded_cents >= 0) NOT VALID;

CREATE TABLE order_refunds (
    refund_id     text PRIMARY KEY,
    order_id      text NOT NULL,
    amount_cents  bigint NOT NULL CHECK (amount_cents > 0),
    event_id      text NOT NULL,      -- the refund.processed applied
    applied_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_refunds_order ON order_refunds (order_id);
