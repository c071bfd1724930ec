DROP TABLE idempotency_keys;
DROP TABLE escalations;
DROP TABLE ticket_events;
DROP TABLE change_counter;
DROP TABLE ticket_counters;
DROP TABLE tickets;
