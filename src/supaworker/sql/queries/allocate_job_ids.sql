-- Ids for a bulk COPY, so the caller learns them without a RETURNING per row. They come back as a range
-- (first, last) when they are contiguous, as they are unless another session took ids at the same moment;
-- otherwise as the sorted array.
SELECT min(v), max(v), CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL ELSE array_agg(v ORDER BY v) END
  FROM (SELECT nextval(pg_get_serial_sequence('{{schema}}.jobs', 'id')) AS v FROM generate_series(1, %(count)s)) ids
