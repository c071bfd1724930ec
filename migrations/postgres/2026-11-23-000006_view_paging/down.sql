DROP INDEX tickets_site_id;
