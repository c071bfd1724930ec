-- Changes are no longer numbered through one counter row that every writing transaction locked
-- until commit. Each event records the transaction that wrote it (`tx`, its top-level xid), and a
-- reader's cursor is the set of transactions its snapshot held: see docs/sync.md. `seq` still
-- names each event and orders a ticket's own events; it comes from a sequence, which no
-- transaction holds while it waits or commits.
ALTER TABLE ticket_events ADD COLUMN tx BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ticket_events ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE SEQUENCE ticket_events_seq OWNED BY ticket_events.seq;
SELECT setval('ticket_events_seq', (SELECT coalesce(max(seq), 0) + 1 FROM ticket_events), false);
ALTER TABLE ticket_events ALTER COLUMN seq SET DEFAULT nextval('ticket_events_seq');
CREATE INDEX ticket_events_tx ON ticket_events (tx);
CREATE INDEX ticket_events_site_tx ON ticket_events (site_id, tx);
DROP INDEX ticket_events_site_seq;
DROP TABLE change_counter;
