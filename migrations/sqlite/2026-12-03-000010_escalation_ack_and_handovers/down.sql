DROP TABLE handover_tickets;
DROP TABLE handovers;
ALTER TABLE escalations DROP COLUMN ack_note;
ALTER TABLE escalations DROP COLUMN acknowledged_by;
ALTER TABLE escalations DROP COLUMN acknowledged_at;
