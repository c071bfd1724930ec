DROP INDEX ticket_events_site_seq;
