-- Every (local date, zone) that has at least one code; closed_at is set exactly once,
-- under FOR UPDATE SKIP LOCKED, so two schedulers never both emit one day's DayClosed.
CREATE TABLE delivery_days (
    local_date    date NOT NULL,
    delivery_zone text NOT NULL,
    closes_at     timestamptz NOT NULL,
    closed_at     timestamptz,
    PRIMARY KEY (local_date, delivery_zone)
);
CREATE INDEX delivery_days_due ON delivery_days (closes_at) WHERE closed_at IS NULL;
