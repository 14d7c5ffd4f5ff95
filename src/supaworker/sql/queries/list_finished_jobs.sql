-- Jobs that reached a final state after %(since)s (the change feed), oldest first, with how long they ran
-- and waited. Served by jobs_completed_at_idx, so it reads only recent rows.
SELECT id, type, status::text AS status, brief_id, completed_at,
       extract(epoch FROM completed_at - started_at)::float8 AS duration_seconds,
       extract(epoch FROM started_at - run_at)::float8 AS queue_latency_seconds
  FROM {{schema}}.jobs
 WHERE completed_at IS NOT NULL AND completed_at > %(since)s
 ORDER BY completed_at, id
 LIMIT %(limit)s
