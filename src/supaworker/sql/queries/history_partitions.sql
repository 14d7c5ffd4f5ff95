-- job_history's partitions, oldest first, with their ranges, estimated rows and size on disk.
SELECT c.relname AS name, r.starts_at, r.ends_at, greatest(c.reltuples, 0)::bigint AS estimated_rows,
       pg_total_relation_size(c.oid) AS total_bytes
  FROM {{schema}}.history_ranges() r JOIN pg_class c ON c.oid = r.name
 ORDER BY r.starts_at
