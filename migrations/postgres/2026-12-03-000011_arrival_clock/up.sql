-- When the desk last restarted a ticket's arrival clock (a new appointment time, urgency raised to
-- emergency); the clock runs from the later of this and the claim.
ALTER TABLE tickets ADD COLUMN arrival_clock_at TIMESTAMP;
