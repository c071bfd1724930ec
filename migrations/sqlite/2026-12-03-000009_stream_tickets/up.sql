-- Single-use tickets that open a browser's event stream (EventSource cannot send an
-- Authorization header): made by an authenticated request, good once and for a minute. Only
-- the SHA-256 of a ticket is kept.
CREATE TABLE stream_tickets (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX stream_tickets_expires ON stream_tickets (expires_at);
