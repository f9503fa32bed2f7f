-- Codes and attempts travel on different topics, so an attempt can arrive for a delivery
-- day whose code the verifier has not stored yet (the customer read the new email first).
-- Such an attempt waits here, with the entered code still sealed, and is decided when the
-- code arrives, or with what is known after a timeout.
CREATE TABLE parked_attempts (
    attempt_id  text PRIMARY KEY,
    shipment_id text NOT NULL,
    envelope    jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_attempts_by_shipment ON parked_attempts (shipment_id, parked_at);
