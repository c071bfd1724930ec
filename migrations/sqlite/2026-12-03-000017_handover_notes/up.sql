-- What a handover passes on besides its tickets: the notes written on them since the site's
-- previous handover (the technicians' findings, the desk's remarks), so the incoming shift reads
-- what happened during the last one. notes_since is that handover's time (null for a site's first
-- handover, which passes on every note of its tickets).
ALTER TABLE handovers ADD COLUMN notes_since TIMESTAMP;

-- a snapshot like handover_tickets: the notes themselves are never changed
CREATE TABLE handover_notes (
    handover_id TEXT NOT NULL REFERENCES handovers (id),
    note_id TEXT NOT NULL REFERENCES ticket_notes (id),
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    PRIMARY KEY (handover_id, note_id)
);
