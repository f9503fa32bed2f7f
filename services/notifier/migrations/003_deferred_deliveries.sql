-- A recipient the server defers (4xx at RCPT) must not hold up everyone else's codes: its
-- delivery row becomes a durable queue entry, with the OtpIssued envelope (code sealed)
-- to build the email from, and a time for the next try.
ALTER TABLE deliveries
    ADD COLUMN issued          jsonb,
    ADD COLUMN deferrals       int NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'deferred', 'sent', 'failed'));
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'deferred';
