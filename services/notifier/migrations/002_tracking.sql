-- The customer's tracking view (services/notifier/tracking.py, web.py).
--
-- `tracking`: one row per shipment, its CURRENT code: sealed exactly as in OtpIssued
-- (AES-GCM, associated data code_context(shipment_id, code_id)), never in the clear.
-- Written in the OtpIssued handler's claim transaction, and only by a newer day_number.
CREATE TABLE tracking (
    shipment_id        text PRIMARY KEY,
    code_id            text NOT NULL,
    day_number         int NOT NULL CHECK (day_number >= 1),
    key_id             text NOT NULL,
    sealed_blob        text NOT NULL,
    order_reference    text NOT NULL,
    delivery_date      date NOT NULL,
    delivery_zone      text NOT NULL,
    valid_from         timestamptz NOT NULL,
    valid_until        timestamptz NOT NULL,
    neighbour_allowed  boolean NOT NULL,
    recipient_name     text NOT NULL,
    recipient_email    text NOT NULL,
    recipient_locale   text NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- `resends`: every resend the customer asked for (and that passed the limits), so the
-- per-shipment limits hold across restarts and instances. `requested_at` is the
-- database's wall clock; `number` makes the Message-ID suffix `.resend-N` per code.
CREATE TABLE resends (
    id            bigserial PRIMARY KEY,
    shipment_id   text NOT NULL,
    code_id       text NOT NULL,
    number        int NOT NULL CHECK (number >= 1),
    message_id    text NOT NULL UNIQUE,
    status        text NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    last_error    text,
    requested_at  timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (code_id, number)
);
CREATE INDEX resends_by_shipment ON resends (shipment_id, requested_at);
