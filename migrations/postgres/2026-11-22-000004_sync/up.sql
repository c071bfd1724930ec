-- Offline sync: phones (clients) and every operation they pushed, with its result.

CREATE TABLE sync_clients (
    client_id TEXT PRIMARY KEY,
    -- the user who first used this app install; nobody else may push as it
    user_id TEXT NOT NULL REFERENCES users (id),
    last_op_id BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Every operation received, applied or rejected: nothing done offline is silently dropped.
CREATE TABLE sync_ops (
    client_id TEXT NOT NULL REFERENCES sync_clients (client_id),
    op_id BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    ticket_id TEXT,
    site_id TEXT,
    name TEXT NOT NULL,
    args TEXT NOT NULL,
    device_time TIMESTAMP,
    received_at TIMESTAMP NOT NULL,
    status TEXT NOT NULL,
    code TEXT,
    detail TEXT,
    PRIMARY KEY (client_id, op_id)
);
CREATE INDEX sync_ops_ticket ON sync_ops (ticket_id, received_at);
CREATE INDEX sync_ops_rejected ON sync_ops (status, site_id, received_at);

CREATE TABLE ticket_notes (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    author_id TEXT NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    device_time TIMESTAMP
);
CREATE INDEX ticket_notes_ticket ON ticket_notes (ticket_id, created_at);
