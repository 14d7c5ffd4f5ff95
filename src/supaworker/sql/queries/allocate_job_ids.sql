-- Ids for a bulk COPY, so the caller learns them without a RETURNING per row.
SELECT nextval(pg_get_serial_sequence('{{schema}}.jobs', 'id')) FROM generate_series(1, %(count)s)
