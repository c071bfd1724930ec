-- Changes are no longer numbered through one counter row. SQLite has one writer at a time, so
-- the rowid it hands out on insert is already in commit order: `seq` becomes that rowid, and
-- `tx` (the writing transaction, in PostgreSQL's xid's place: see docs/sync.md) is the same
-- number. AUTOINCREMENT: a number is never handed out twice, even after the last row is gone.
CREATE TABLE ticket_events_new (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    site_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    actor_id TEXT,
    at TIMESTAMP NOT NULL,
    from_status TEXT,
    to_status TEXT,
    data TEXT NOT NULL,
    tx BIGINT GENERATED ALWAYS AS (seq) VIRTUAL NOT NULL
);
INSERT INTO ticket_events_new (seq, id, ticket_id, site_id, event_type, actor_id, at, from_status, to_status, data)
    SELECT seq, id, ticket_id, site_id, event_type, actor_id, at, from_status, to_status, data FROM ticket_events;
DROP TABLE ticket_events;
ALTER TABLE ticket_events_new RENAME TO ticket_events;
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, seq);
CREATE INDEX ticket_events_tx ON ticket_events (tx);
CREATE INDEX ticket_events_site_tx ON ticket_events (site_id, tx);
DROP TABLE change_counter;
