-- The desk's day: who took an escalation, when, and what they said; shift handovers (交接班),
-- each with the site's unfinished tickets as they stood when it was written.

-- acknowledged_by names a user; no REFERENCES, which SQLite could not drop again in down.sql
ALTER TABLE escalations ADD COLUMN acknowledged_at TIMESTAMP;
ALTER TABLE escalations ADD COLUMN acknowledged_by TEXT;
ALTER TABLE escalations ADD COLUMN ack_note TEXT;

CREATE TABLE handovers (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites (id),
    shift TEXT NOT NULL,
    note TEXT,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    acknowledged_by TEXT REFERENCES users (id),
    acknowledged_at TIMESTAMP
);
CREATE INDEX handovers_site_created ON handovers (site_id, created_at);

-- a snapshot: never updated, so it says what the outgoing shift saw
CREATE TABLE handover_tickets (
    handover_id TEXT NOT NULL REFERENCES handovers (id),
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    number TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee_id TEXT,
    open_escalations BIGINT NOT NULL,
    PRIMARY KEY (handover_id, ticket_id)
);
