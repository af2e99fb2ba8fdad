-- Order status: created -> reserved -> paid | failed, kept by ingest from
-- stock.reserved, stock.rejected and payment.settled. A terminal status is
-- reached once: transitions are conditional updates on the current status.
ALTER TABLE orders
    ADD COLUMN status_reason text NOT NULL DEFAULT '',
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT orders_status_valid CHECK (status IN ('created', 'reserved', 'paid', 'failed'));

CREATE TABLE order_status_history (
    order_id    text NOT NULL,
    status      text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    event_id    text NOT NULL,      -- the event that caused the transition
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_status_history_order ON order_status_history (order_id, at);
