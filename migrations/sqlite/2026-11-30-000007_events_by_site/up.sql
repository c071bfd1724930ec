-- Reads of the change feed filtered by site (a phone's pull, the event streams) walk a site's
-- events in sequence order from here instead of filtering every site's events.
CREATE INDEX ticket_events_site_seq ON ticket_events (site_id, seq);
