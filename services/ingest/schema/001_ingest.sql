-- ingest owns imports, their rows, and the orders sealed from them.

-- One import: a file sent by `omsctl import` (kind 'file'), or the rows of one
-- order published without an import id (kind 'live', import_id 'live:<order>').
CREATE TABLE imports (
    import_id      text PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('file', 'live')),
    expected_rows  int,              -- from the Oms-Import-End marker
    received_rows  int NOT NULL DEFAULT 0,
    first_row_at   timestamptz NOT NULL DEFAULT now(),
    last_row_at    timestamptz NOT NULL DEFAULT now(),
    sealed_at      timestamptz,
    timed_out      boolean NOT NULL DEFAULT false,
    valid_rows     int,
    rejected_rows  int,
    orders         int
);
CREATE INDEX imports_open ON imports (last_row_at) WHERE sealed_at IS NULL;

-- Every row received, valid or not. reason IS NULL means the row is valid so far.
CREATE TABLE import_rows (
    import_id         text NOT NULL,
    seq               int NOT NULL,     -- = row_no for files; arrival order for live rows
    row_no            int NOT NULL,     -- record number in the file or message (header = 1)
    order_id          text NOT NULL,
    customer_id       text NOT NULL,
    customer_email    text NOT NULL,
    customer_name     text NOT NULL,
    sku               text NOT NULL,
    product_name      text NOT NULL,
    qty               int NOT NULL,
    unit_price_cents  bigint NOT NULL,
    currency          text NOT NULL,
    placed_at_ms      bigint NOT NULL,
    field             text,
    reason            text,
    PRIMARY KEY (import_id, seq)
);
CREATE INDEX import_rows_order ON import_rows (order_id);

CREATE TABLE orders (
    order_id        text PRIMARY KEY,
    import_id       text NOT NULL,   -- the (possibly live) import it was sealed from
    customer_id     text NOT NULL,
    customer_email  text NOT NULL,
    customer_name   text NOT NULL,
    total_cents     bigint NOT NULL CHECK (total_cents >= 0),
    currency        text NOT NULL,
    placed_at_ms    bigint NOT NULL,
    line_count      int NOT NULL CHECK (line_count > 0),
    status          text NOT NULL DEFAULT 'created',
    created_event_id text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_import ON orders (import_id);

-- Rows published without an import id and without a usable order id belong
-- to no order; they are numbered from this sequence under import_id 'live:'.
CREATE SEQUENCE import_rows_orphan_seq;
