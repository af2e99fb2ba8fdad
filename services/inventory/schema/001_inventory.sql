-- inventory owns products with their stock levels, and one reservation per
-- order: the units it holds from order.created until payment.settled.

-- available = on_hand - reserved. The checks are the last line of defence:
-- the consumers never plan a change that would break them.
CREATE TABLE products (
    sku          text PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    on_hand      bigint NOT NULL DEFAULT 0,
    reserved     bigint NOT NULL DEFAULT 0,
    price_cents  bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT products_reserved_not_negative CHECK (reserved >= 0),
    CONSTRAINT products_on_hand_covers_reserved CHECK (on_hand >= reserved)
);

-- One row per order inventory decided on. reserved: its lines are held;
-- committed: sold (payment succeeded); released: given back (payment failed);
-- rejected: nothing was held, reason says why.
CREATE TABLE reservations (
    order_id    text PRIMARY KEY,
    status      text NOT NULL
                CHECK (status IN ('reserved', 'committed', 'released', 'rejected')),
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    settled_at  timestamptz
);

-- The units a reservation holds, one row per SKU (an order's lines of the
-- same SKU summed). Only orders that were reserved have lines; they stay
-- after settlement, saying what was sold or given back.
CREATE TABLE reservation_lines (
    order_id  text NOT NULL REFERENCES reservations (order_id),
    sku       text NOT NULL,
    qty       bigint NOT NULL CHECK (qty > 0),
    PRIMARY KEY (order_id, sku)
);
