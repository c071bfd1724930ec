DROP INDEX tickets_rework;
CREATE INDEX tickets_rework ON tickets (site_id, category, location, completed_at);
DROP INDEX tickets_search_trgm;
ALTER TABLE tickets DROP COLUMN search_text;
ALTER TABLE tickets DROP COLUMN location_key;
