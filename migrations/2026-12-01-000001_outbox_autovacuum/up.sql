-- The outbox is a queue: every row is inserted, claimed (an update) and
-- marked published (an update that takes it out of `outbox_unpublished`),
-- so the index the relay's claim and the backlog read scan fills with
-- entries of dead rows until VACUUM removes them (decision 67). By default
-- autovacuum waits for 20 % of the table to be dead, and with published rows
-- kept 24 h the table is a day of events: hours between vacuums, claims
-- growing from 0.1 ms to 20 ms and more. Vacuum it after a fixed number of
-- dead rows instead, whatever its size, and always clean its indexes (from
-- PostgreSQL 14 a vacuum may skip that when few pages hold dead rows — the
-- case of a few thousand dead rows at the end of a large table).
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000,
    vacuum_index_cleanup = on
);
