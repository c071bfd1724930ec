-- What a quote's price covers: `all` (everything the resident pays, materials included) or
-- `labour` (labour only; chargeable company-supplied materials are added). Quotes written before
-- this were billed as labour plus materials, so they keep that meaning.
ALTER TABLE quotes ADD COLUMN covers TEXT NOT NULL DEFAULT 'all';
UPDATE quotes SET covers = 'labour';
-- The bill's total when the resident accepted (NULL: not accepted, or accepted before this was
-- recorded); completing with a larger bill needs a new accepted quote.
ALTER TABLE quotes ADD COLUMN accepted_total_cents BIGINT;
