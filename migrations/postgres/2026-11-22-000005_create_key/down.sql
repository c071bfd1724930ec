DROP INDEX tickets_create_key;
ALTER TABLE tickets DROP COLUMN create_key;
