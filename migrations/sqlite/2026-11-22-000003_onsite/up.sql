-- On site: resident codes, the SMS outbox, arrival, materials, quotes, holds, completion, callbacks.

ALTER TABLE tickets ADD COLUMN arrival_device_time TIMESTAMP;
ALTER TABLE tickets ADD COLUMN arrival_on_time BOOLEAN;
ALTER TABLE tickets ADD COLUMN arrival_verified_via TEXT;
ALTER TABLE tickets ADD COLUMN arrival_lat DOUBLE;
ALTER TABLE tickets ADD COLUMN arrival_lng DOUBLE;
ALTER TABLE tickets ADD COLUMN phone_verified_at TIMESTAMP;
ALTER TABLE tickets ADD COLUMN phone_verified_by TEXT;
ALTER TABLE tickets ADD COLUMN hold_reason TEXT;
ALTER TABLE tickets ADD COLUMN hold_note TEXT;
ALTER TABLE tickets ADD COLUMN resume_at TIMESTAMP;
ALTER TABLE tickets ADD COLUMN result TEXT;
ALTER TABLE tickets ADD COLUMN resident_rating BIGINT;
ALTER TABLE tickets ADD COLUMN fee_collected_cents BIGINT;
ALTER TABLE tickets ADD COLUMN signature_png BLOB;
CREATE INDEX tickets_rework ON tickets (site_id, category, location, completed_at);

-- A code the resident gives at the door (arrival) or to accept a quote (quote). Only a keyed
-- hash is kept.
CREATE TABLE resident_codes (
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    purpose TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    failed_attempts BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (ticket_id, purpose)
);

-- Written in the same transaction as the change that causes a message; a worker delivers it.
CREATE TABLE sms_outbox (
    id TEXT PRIMARY KEY,
    ticket_id TEXT REFERENCES tickets (id),
    to_phone TEXT NOT NULL,
    template TEXT NOT NULL,
    params TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_token TEXT,
    lease_until TIMESTAMP,
    provider TEXT,
    provider_message_id TEXT,
    provider_status TEXT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    failed_at TIMESTAMP
);
CREATE INDEX sms_outbox_due ON sms_outbox (status, next_attempt_at);
CREATE INDEX sms_outbox_phone ON sms_outbox (to_phone, created_at);
CREATE INDEX sms_outbox_ticket ON sms_outbox (ticket_id, created_at);
CREATE INDEX sms_outbox_created ON sms_outbox (created_at);

CREATE TABLE material_catalogue (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites (id),
    name TEXT NOT NULL,
    spec TEXT,
    model TEXT,
    unit TEXT NOT NULL,
    default_price_cents BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX material_catalogue_site ON material_catalogue (site_id, name);

-- Ids are made by the phone, so a line added offline keeps its id. Deleted lines stay, marked.
CREATE TABLE material_lines (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    catalogue_item_id TEXT REFERENCES material_catalogue (id),
    name TEXT NOT NULL,
    spec TEXT,
    model TEXT,
    quantity TEXT NOT NULL,
    quantity_milli BIGINT NOT NULL,
    unit TEXT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    supplied_by TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX material_lines_ticket ON material_lines (ticket_id, created_at);

CREATE TABLE quotes (
    ticket_id TEXT PRIMARY KEY REFERENCES tickets (id),
    amount_cents BIGINT NOT NULL,
    note TEXT,
    status TEXT NOT NULL,
    proposed_by TEXT NOT NULL,
    proposed_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP,
    decided_by TEXT,
    decided_via TEXT,
    decision_note TEXT
);

CREATE TABLE callbacks (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    made_by TEXT NOT NULL,
    made_at TIMESTAMP NOT NULL,
    reached BOOLEAN NOT NULL,
    satisfaction BIGINT,
    comment TEXT
);
CREATE INDEX callbacks_ticket ON callbacks (ticket_id, made_at);
