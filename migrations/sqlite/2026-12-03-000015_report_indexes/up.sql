-- The monthly report (issue 16) reads a site's tickets by the month they were created, reached,
-- completed or cancelled in, each through an index of (site, that time); a completed ticket's
-- rework through the tickets pointing at it; quotes by when they were proposed and decided;
-- matters by when they were registered and replied to.
CREATE INDEX tickets_site_created ON tickets (site_id, created_at);
CREATE INDEX tickets_site_arrived ON tickets (site_id, arrived_at);
CREATE INDEX tickets_site_completed ON tickets (site_id, completed_at);
CREATE INDEX tickets_site_cancelled ON tickets (site_id, cancelled_at);
CREATE INDEX tickets_rework_of ON tickets (rework_of);
CREATE INDEX quotes_proposed ON quotes (proposed_at);
CREATE INDEX quotes_decided ON quotes (decided_at);
CREATE INDEX matters_site_created ON matters (site_id, created_at);
CREATE INDEX matters_site_replied ON matters (site_id, replied_at);
