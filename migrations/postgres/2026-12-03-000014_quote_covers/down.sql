ALTER TABLE quotes DROP COLUMN accepted_total_cents;
ALTER TABLE quotes DROP COLUMN covers;
