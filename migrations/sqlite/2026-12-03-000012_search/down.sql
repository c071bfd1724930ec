DROP TRIGGER ticket_search_delete;
DROP TRIGGER ticket_search_update;
DROP TRIGGER ticket_search_insert;
DROP TABLE ticket_search;
DROP INDEX tickets_rework;
CREATE INDEX tickets_rework ON tickets (site_id, category, location, completed_at);
ALTER TABLE tickets DROP COLUMN search_text;
ALTER TABLE tickets DROP COLUMN location_key;
