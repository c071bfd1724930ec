-- Dispatch: tickets, their numbers, their history, escalations, idempotent requests.

CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites (id),
    number TEXT NOT NULL UNIQUE,
    area TEXT NOT NULL,
    location TEXT NOT NULL,
    category TEXT NOT NULL,
    urgency TEXT NOT NULL,
    paid BOOLEAN NOT NULL,
    description TEXT NOT NULL,
    reporter_name TEXT NOT NULL,
    reporter_phone TEXT,
    appointment_at TIMESTAMP,
    resident_supplies_parts BOOLEAN NOT NULL,
    channel TEXT NOT NULL,
    requested_technician_id TEXT REFERENCES users (id),
    status TEXT NOT NULL,
    assignee_id TEXT REFERENCES users (id),
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    -- when the ticket last entered the grab pool: the unclaimed clock runs from here
    pooled_at TIMESTAMP,
    claimed_at TIMESTAMP,
    arrived_at TIMESTAMP,
    completed_at TIMESTAMP,
    closed_at TIMESTAMP,
    cancelled_at TIMESTAMP,
    cancel_reason TEXT,
    -- the last progress or word on the ticket: the stalled clock runs from here
    last_activity_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL,
    rework_of TEXT REFERENCES tickets (id)
);
CREATE INDEX tickets_site_status ON tickets (site_id, status, created_at);
CREATE INDEX tickets_assignee_status ON tickets (assignee_id, status);
CREATE INDEX tickets_status_pooled ON tickets (status, pooled_at);
CREATE INDEX tickets_created ON tickets (created_at, id);

-- The last number given per site and local day. Taken with an upsert inside the creating
-- transaction, so a rolled-back create gives its number back and numbers have no gaps.
CREATE TABLE ticket_counters (
    site_id TEXT NOT NULL REFERENCES sites (id),
    day TEXT NOT NULL,
    last_value BIGINT NOT NULL,
    PRIMARY KEY (site_id, day)
);

-- One row: the change sequence. Taken last in a writing transaction and held until commit, so
-- sequence order is commit order and a reader that has seen N has seen everything below N.
CREATE TABLE change_counter (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO change_counter (name, value) VALUES ('events', 0);

CREATE TABLE ticket_events (
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
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, seq);

CREATE TABLE escalations (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    site_id TEXT NOT NULL REFERENCES sites (id),
    kind TEXT NOT NULL,
    -- ticket, kind and the moment the condition began: one escalation per occurrence, however
    -- many scanners see it
    dedupe_key TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP
);
CREATE INDEX escalations_site_open ON escalations (site_id, resolved_at);
CREATE INDEX escalations_ticket ON escalations (ticket_id);

CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code BIGINT,
    content_type TEXT,
    body TEXT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
