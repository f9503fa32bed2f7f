-- Who may try at a door: one courier and terminal per shipment and delivery day.
CREATE TABLE assignments (
    shipment_id         text NOT NULL,
    delivery_date       date NOT NULL,
    courier_id          text NOT NULL,
    terminal_id         text NOT NULL,
    out_for_delivery_at timestamptz NOT NULL,
    PRIMARY KEY (shipment_id, delivery_date)
);

-- Every decision, with who asked, so failures can be counted per courier and terminal
-- over a sliding window, and refused attempts stay on record.
ALTER TABLE attempts
    ADD COLUMN courier_id  text,
    ADD COLUMN terminal_id text,
    ADD COLUMN accepted    boolean,
    ADD COLUMN reason      text;
CREATE INDEX attempts_by_courier ON attempts (courier_id, decided_at);
CREATE INDEX attempts_by_terminal ON attempts (terminal_id, decided_at);

-- Open flags: at most one per courier or terminal until an operator clears it.
CREATE TABLE flags (
    subject          text NOT NULL CHECK (subject IN ('courier', 'terminal')),
    subject_id       text NOT NULL,
    flagged_at       timestamptz NOT NULL,
    failed_shipments int NOT NULL,
    wrong_tries      int NOT NULL,
    cleared_at       timestamptz,
    cleared_by       text
);
CREATE UNIQUE INDEX flags_one_open ON flags (subject, subject_id) WHERE cleared_at IS NULL;
