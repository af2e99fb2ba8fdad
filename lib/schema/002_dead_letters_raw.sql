-- Dead letters keep the message's own bytes: a message whose subject, event id
-- or headers PostgreSQL would refuse as text (bytes that are not UTF-8, a NUL)
-- must still be recorded. The text columns (subject, event_id, headers, reason)
-- now hold a printable form (invalid UTF-8 and control characters escaped,
-- bounded length) for listing; retry replays the *_raw columns and payload.
--
-- headers_raw is the NATS header block as the consumer decoded it:
-- "NATS/1.0\r\n", one "Key: value\r\n" per value, "\r\n".
ALTER TABLE dead_letters
    ADD COLUMN subject_raw  bytea NOT NULL DEFAULT '',
    ADD COLUMN event_id_raw bytea NOT NULL DEFAULT '',
    ADD COLUMN headers_raw  bytea NOT NULL DEFAULT '\x4e4154532f312e300d0a0d0a';

-- Rows written before this migration held valid text only: their raw form is
-- that text (headers were "Key: value\n" lines).
UPDATE dead_letters SET
    subject_raw  = convert_to(subject, 'UTF8'),
    event_id_raw = convert_to(event_id, 'UTF8'),
    headers_raw  = convert_to('NATS/1.0' || E'\r\n' || replace(headers, E'\n', E'\r\n')
                              || E'\r\n', 'UTF8');
