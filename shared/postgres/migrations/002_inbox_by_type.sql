-- An event is its id and its type: a message of another type that reuses an id (by mistake
-- or on purpose) must not make the real event look already handled.
ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
ALTER TABLE inbox ADD PRIMARY KEY (event_id, event_type);
