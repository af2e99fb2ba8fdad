-- The product-list layout (docs/csv.md): one CSV row is one order, its lines
-- in a JSON cell. Each line is stored as its own import_rows row, numbered
-- by line_no under the row's seq; only line 0 stands for the CSV row in the
-- counts and in rejections (every line of a row shares its fate).
--
-- ADD COLUMN with a constant default does not rewrite the table; the new
-- primary key is one index build over import_rows.
ALTER TABLE import_rows
    ADD COLUMN line_no int NOT NULL DEFAULT 0,
    ADD COLUMN customer_phone text NOT NULL DEFAULT '',
    ADD COLUMN customer_address text NOT NULL DEFAULT '';
ALTER TABLE import_rows DROP CONSTRAINT import_rows_pkey,
    ADD PRIMARY KEY (import_id, seq, line_no);

ALTER TABLE orders
    ADD COLUMN customer_phone text NOT NULL DEFAULT '',
    ADD COLUMN customer_address text NOT NULL DEFAULT '';

-- ingest's projection of the catalogue's prices, from catalog.product
-- (inventory owns the catalogue): the price of a line the file gives none.
-- occurred_at_ms (the event's) keeps the newest price when events are redelivered or replayed.
CREATE TABLE catalog_prices (
    sku          text PRIMARY KEY,
    price_cents  bigint NOT NULL CHECK (price_cents >= 0),
    occurred_at_ms bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
