DROP TABLE push_outbox;
DROP TABLE devices;
ALTER TABLE users DROP COLUMN on_duty;
