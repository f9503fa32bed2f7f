-- What the verifier knows of each shipment: whether it needs a code at all.
CREATE TABLE shipments (
    shipment_id     text PRIMARY KEY,
    code_required   boolean NOT NULL,
    returned        boolean NOT NULL DEFAULT false,
    current_code_id text
);

-- Codes as keyed hashes only: the plaintext never reaches this service's storage.
CREATE TABLE codes (
    code_id           text PRIMARY KEY,
    shipment_id       text NOT NULL REFERENCES shipments (shipment_id),
    day_number        int NOT NULL,
    delivery_date     date NOT NULL,
    delivery_zone     text NOT NULL,
    valid_from        timestamptz NOT NULL,
    valid_until       timestamptz NOT NULL,
    digest_key_id     text NOT NULL,
    digest            text NOT NULL,
    status            text NOT NULL CHECK (status IN ('active', 'locked', 'consumed', 'superseded', 'expired')),
    wrong_tries       int NOT NULL DEFAULT 0,
    max_attempts      int NOT NULL,
    neighbour_allowed boolean NOT NULL,
    received_by       jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX codes_one_live_per_shipment ON codes (shipment_id) WHERE status IN ('active', 'locked');
CREATE INDEX codes_open_by_day ON codes (delivery_date, delivery_zone) WHERE status IN ('active', 'locked');

-- One decision per attempt id: a repeated attempt gets the stored answer and counts once.
CREATE TABLE attempts (
    attempt_id  text PRIMARY KEY,
    shipment_id text NOT NULL,
    decision    jsonb NOT NULL,
    decided_at  timestamptz NOT NULL
);

-- Days already closed, so a code that arrives late for a closed day expires at once.
CREATE TABLE closed_days (
    local_date    date NOT NULL,
    delivery_zone text NOT NULL,
    closed_at     timestamptz NOT NULL,
    PRIMARY KEY (local_date, delivery_zone)
);
