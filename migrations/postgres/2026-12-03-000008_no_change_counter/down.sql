CREATE TABLE change_counter (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO change_counter (name, value) SELECT 'events', coalesce(max(seq), 0) FROM ticket_events;
CREATE INDEX ticket_events_site_seq ON ticket_events (site_id, seq);
DROP INDEX ticket_events_site_tx;
DROP INDEX ticket_events_tx;
ALTER TABLE ticket_events ALTER COLUMN seq DROP DEFAULT;
DROP SEQUENCE ticket_events_seq;
ALTER TABLE ticket_events DROP COLUMN tx;
