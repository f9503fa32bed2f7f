-- One row per shipment; the natural key makes a second ShipmentDispatched a no-op.
CREATE TABLE shipments (
    shipment_id       text PRIMARY KEY,
    order_reference   text NOT NULL,
    delivery_zone     text NOT NULL,
    recipient         jsonb NOT NULL,
    neighbour_allowed boolean NOT NULL,
    code_required     boolean NOT NULL,
    status            text NOT NULL CHECK (status IN ('no_code', 'out_for_delivery', 'returned')),
    current_day       int,
    dispatched_at     timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Codes are kept sealed only (for the customer's tracking view); never in the clear.
CREATE TABLE codes (
    code_id       text PRIMARY KEY,
    shipment_id   text NOT NULL REFERENCES shipments (shipment_id),
    day_number    int NOT NULL,
    delivery_date date NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_until   timestamptz NOT NULL,
    seal_key_id   text NOT NULL,
    sealed        text NOT NULL,
    CONSTRAINT one_code_per_day UNIQUE (shipment_id, delivery_date),
    CONSTRAINT one_code_per_day_number UNIQUE (shipment_id, day_number)
);
