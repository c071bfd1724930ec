-- Matters that are not repairs (报事): complaints, inquiries, suggestions and praise, routed to the
-- supervisors of a department, replied to, and called back like tickets.

-- the departments whose matters a supervisor answers
CREATE TABLE user_departments (
    user_id TEXT NOT NULL REFERENCES users (id),
    department TEXT NOT NULL,
    PRIMARY KEY (user_id, department)
);

CREATE TABLE matters (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites (id),
    number TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    department TEXT NOT NULL,
    status TEXT NOT NULL,
    description TEXT NOT NULL,
    reporter_name TEXT NOT NULL,
    reporter_phone TEXT,
    location TEXT,
    channel TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    reply TEXT,
    replied_by TEXT REFERENCES users (id),
    replied_at TIMESTAMP,
    closed_at TIMESTAMP
);
CREATE INDEX matters_site_status ON matters (site_id, status, created_at);
CREATE INDEX matters_status_created ON matters (status, created_at);

CREATE TABLE matter_callbacks (
    id TEXT PRIMARY KEY,
    matter_id TEXT NOT NULL REFERENCES matters (id),
    made_by TEXT NOT NULL,
    made_at TIMESTAMP NOT NULL,
    reached BOOLEAN NOT NULL,
    satisfaction BIGINT,
    comment TEXT
);
CREATE INDEX matter_callbacks_matter ON matter_callbacks (matter_id, made_at);

-- a table of their own rather than a nullable escalations.ticket_id: SQLite cannot relax a
-- NOT NULL column without rebuilding the table, and every ticket query keeps its join
CREATE TABLE matter_escalations (
    id TEXT PRIMARY KEY,
    matter_id TEXT NOT NULL REFERENCES matters (id),
    site_id TEXT NOT NULL REFERENCES sites (id),
    kind TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    acknowledged_at TIMESTAMP,
    acknowledged_by TEXT,
    ack_note TEXT
);
CREATE INDEX matter_escalations_site_open ON matter_escalations (site_id, resolved_at);
CREATE INDEX matter_escalations_matter ON matter_escalations (matter_id);
