DROP TABLE handover_notes;
ALTER TABLE handovers DROP COLUMN notes_since;
