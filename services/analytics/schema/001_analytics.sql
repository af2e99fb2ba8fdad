-- analytics' own tables (dead_letters, inbox and outbox come from lib/schema).
-- The projection itself lives in Redis; PostgreSQL keeps copies of it.

-- A day's KPIs as they were when the snapshot was taken (the daily automatic
-- snapshot, or POST /kpi/snapshot, which replaces an earlier one).
CREATE TABLE kpi_snapshots (
    day           date PRIMARY KEY,
    revenue_cents bigint NOT NULL,
    order_count   bigint NOT NULL,
    failed_count  bigint NOT NULL,
    refund_cents  bigint NOT NULL,
    refund_count  bigint NOT NULL,
    currency      text NOT NULL,
    taken_at      timestamptz NOT NULL DEFAULT now()
);

-- The top of the leaderboard of the day's month, taken with the day's KPIs.
CREATE TABLE leaderboard_snapshots (
    day             date NOT NULL REFERENCES kpi_snapshots (day) ON DELETE CASCADE,
    period          text NOT NULL,          -- YYYY-MM, the month of day
    rank            int NOT NULL,
    customer_id     text NOT NULL,
    name            text NOT NULL,
    email           text NOT NULL,
    net_spend_cents bigint NOT NULL,
    orders          bigint NOT NULL,
    PRIMARY KEY (day, rank)
);
