-- One row per code: the email's idempotency record. `send_attempts` counts hand-overs
-- to SMTP, so a resend after a crash between SMTP's acceptance and this row's update
-- is visible (send_attempts > 1 with the same stable Message-ID).
CREATE TABLE deliveries (
    code_id       text PRIMARY KEY,
    shipment_id   text NOT NULL,
    message_id    text NOT NULL UNIQUE,
    status        text NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    send_attempts int NOT NULL DEFAULT 0,
    language      text,
    last_error    text,
    accepted_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
