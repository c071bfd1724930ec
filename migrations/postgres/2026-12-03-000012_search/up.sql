-- Finding tickets: the place as typed and as a key that spells one place one way (rework is found
-- by the key), and the text a search matches (number, place, reporter, description, phone digits,
-- lowercased), served by a trigram index (pg_trgm: LIKE '%...%' of three characters or more).
-- Rows from before get a key and a text made the same way as far as SQL can (full-width digits,
-- spaces, 幢/号楼/室); the server writes both for every ticket it creates or edits.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
ALTER TABLE tickets ADD COLUMN location_key TEXT;
ALTER TABLE tickets ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE tickets SET location_key = replace(replace(replace(replace(replace(translate(location,
    '０１２３４５６７８９　', '0123456789 '), ' ', ''), '号楼', '栋'), '幢', '栋'), '室', ''), chr(9), '');
UPDATE tickets SET search_text = lower(number || ' ' || location || ' ' || location_key || ' ' || reporter_name
    || ' ' || description || ' ' || coalesce(reporter_phone, ''));
CREATE INDEX tickets_search_trgm ON tickets USING gin (search_text gin_trgm_ops);
-- rework is found by the place's key, no longer by the place as typed
DROP INDEX tickets_rework;
CREATE INDEX tickets_rework ON tickets (site_id, category, location_key, completed_at);
