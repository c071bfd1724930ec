CREATE TABLE ticket_events_old (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    site_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    actor_id TEXT,
    at TIMESTAMP NOT NULL,
    from_status TEXT,
    to_status TEXT,
    data TEXT NOT NULL
);
INSERT INTO ticket_events_old (seq, id, ticket_id, site_id, event_type, actor_id, at, from_status, to_status, data)
    SELECT seq, id, ticket_id, site_id, event_type, actor_id, at, from_status, to_status, data FROM ticket_events;
DROP TABLE ticket_events;
ALTER TABLE ticket_events_old RENAME TO ticket_events;
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, seq);
CREATE INDEX ticket_events_site_seq ON ticket_events (site_id, seq);
CREATE TABLE change_counter (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO change_counter (name, value) SELECT 'events', coalesce(max(seq), 0) FROM ticket_events;
