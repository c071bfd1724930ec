-- A phone's first pull pages through its sites' tickets in id order: read in that order from
-- here, a page costs the same however many tickets a site has.
CREATE INDEX tickets_site_id ON tickets (site_id, id);
