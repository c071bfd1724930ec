-- Finding tickets: the place as typed and as a key that spells one place one way (rework is found
-- by the key), and the text a search matches (number, place, reporter, description, phone digits,
-- lowercased), served by an FTS5 table with the trigram tokenizer, kept by triggers.
-- Rows from before get a key and a text made the same way as far as SQL can (full-width digits,
-- spaces, 幢/号楼/室); the server writes both for every ticket it creates or edits.
ALTER TABLE tickets ADD COLUMN location_key TEXT;
ALTER TABLE tickets ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE tickets SET location_key = replace(replace(replace(replace(replace(replace(replace(replace(
    replace(replace(replace(replace(replace(replace(location, '０', '0'), '１', '1'), '２', '2'), '３', '3'),
    '４', '4'), '５', '5'), '６', '6'), '７', '7'), '８', '8'), '９', '9'), '　', ''), ' ', ''), '号楼', '栋'),
    '幢', '栋');
UPDATE tickets SET location_key = replace(replace(location_key, '室', ''), char(9), '');
UPDATE tickets SET search_text = lower(number || ' ' || location || ' ' || location_key || ' ' || reporter_name
    || ' ' || description || ' ' || coalesce(reporter_phone, ''));
CREATE VIRTUAL TABLE ticket_search USING fts5(search_text, tokenize = 'trigram', content = 'tickets', content_rowid = 'rowid');
INSERT INTO ticket_search (ticket_search) VALUES ('rebuild');
CREATE TRIGGER ticket_search_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO ticket_search (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER ticket_search_update AFTER UPDATE OF search_text ON tickets BEGIN
    INSERT INTO ticket_search (ticket_search, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO ticket_search (rowid, search_text) VALUES (new.rowid, new.search_text);
END;
CREATE TRIGGER ticket_search_delete AFTER DELETE ON tickets BEGIN
    INSERT INTO ticket_search (ticket_search, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;
-- rework is found by the place's key, no longer by the place as typed
DROP INDEX tickets_rework;
CREATE INDEX tickets_rework ON tickets (site_id, category, location_key, completed_at);
