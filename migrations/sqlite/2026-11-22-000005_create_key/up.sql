-- The Idempotency-Key a ticket was created with, unique per creator: a retry after a crash that
-- lost the stored answer finds the ticket instead of registering it twice.
ALTER TABLE tickets ADD COLUMN create_key TEXT;
CREATE UNIQUE INDEX tickets_create_key ON tickets (created_by, create_key);
