ALTER TABLE tickets DROP COLUMN arrival_clock_at;
