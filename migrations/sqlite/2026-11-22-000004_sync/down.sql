DROP TABLE ticket_notes;
DROP TABLE sync_ops;
DROP TABLE sync_clients;
