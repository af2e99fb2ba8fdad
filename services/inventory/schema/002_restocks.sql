-- Refunds with restock put sold units back on hand (refund.processed).
-- restocked counts the units of a line given back so far, so a line is never
-- restocked beyond what was sold, however many refunds name it; restocks
-- records each refund applied, so a refund is restocked once whatever event
-- id it arrives under.
--
-- NOT VALID: restocked starts at 0 on existing rows, which satisfy the check;
-- a large table is not scanned under an exclusive lock. New writes are checked.
ALTER TABLE reservation_lines
    ADD COLUMN restocked bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT reservation_lines_restock_bounded
        CHECK (restocked >= 0 AND restocked <= qty) NOT VALID;

CREATE TABLE restocks (
    refund_id   text PRIMARY KEY,
    order_id    text NOT NULL,
    units       bigint NOT NULL CHECK (units >= 0),  -- 0: nothing was left to put back
    event_id    text NOT NULL,                        -- the refund.processed applied
    applied_at  timestamptz NOT NULL DEFAULT now()
);
