-- The inbox's seen_at index serves one query, the relay's prune
-- (DELETE FROM inbox WHERE seen_at < now() - retention, lib/outbox.c).
-- seen_at defaults to now() at insert, so it follows the heap's physical
-- order and a BRIN range index leads the prune to the old pages as a btree
-- did, for a few index pages instead of one btree entry (and its WAL) per
-- inbox row. BRIN is lossy, never wrong: a range not yet summarised, or
-- widened by a row in reused space, is simply scanned. autosummarize lets
-- autovacuum summarise each range as it fills. The build is one scan of
-- inbox inside the migration's transaction (consumers wait for it).
DROP INDEX IF EXISTS inbox_seen_at;
CREATE INDEX inbox_seen_at ON inbox USING brin (seen_at) WITH (autosummarize = on);
