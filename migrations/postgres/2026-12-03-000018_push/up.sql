-- Push notifications to technicians' phones (issue 18). A technician off duty hears of no new
-- ticket in their pool; everyone starts on duty.
ALTER TABLE users ADD COLUMN on_duty BOOLEAN NOT NULL DEFAULT TRUE;

-- A phone's push registration. A token belongs to one user at a time: registered again by
-- someone else (a phone shared between shifts), its row is replaced by one of theirs.
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    provider TEXT NOT NULL,
    token TEXT NOT NULL,
    platform TEXT NOT NULL,
    app_version TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX devices_token ON devices (provider, token);
CREATE INDEX devices_user ON devices (user_id, updated_at);

-- Written in the transaction of the ticket's change that causes it, one row per device; a
-- worker delivers it. device_id has no reference: a device may be removed while its messages
-- wait, and they are then not sent.
CREATE TABLE push_outbox (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    priority TEXT NOT NULL,
    collapse_key TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_token TEXT,
    lease_until TIMESTAMP,
    provider TEXT NOT NULL,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    failed_at TIMESTAMP
);
CREATE INDEX push_outbox_due ON push_outbox (status, next_attempt_at);
CREATE INDEX push_outbox_ticket ON push_outbox (ticket_id, created_at);
