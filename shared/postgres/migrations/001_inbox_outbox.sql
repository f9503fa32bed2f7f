-- The inbox makes every consumed event an at-most-once effect: its primary key is the
-- event id, written in the same transaction as the state change it causes.
CREATE TABLE inbox (
    event_id     uuid PRIMARY KEY,
    event_type   text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- The outbox holds the events a state change causes until the relay has published them;
-- a row and the change that caused it commit together or not at all.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    topic      text NOT NULL,
    key        text NOT NULL,
    event_type text NOT NULL,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
