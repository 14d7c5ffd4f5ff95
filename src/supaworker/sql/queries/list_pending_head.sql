-- The next runnable jobs in claim order, and the age of the oldest among the first %(cap)s of them (exact
-- whenever fewer than %(cap)s are runnable). An infinite creation time (plain SQL) has no age.
WITH head AS (
  SELECT id, type, queue, priority, attempts, max_attempts, brief_id, payload, run_at, created_at,
         row_number() OVER (ORDER BY priority, run_at, id) AS position
    FROM {{schema}}.jobs
   WHERE status = 'pending' AND run_at <= now()
   ORDER BY priority, run_at, id
   LIMIT %(cap)s
)
SELECT id, type, queue, priority, attempts, max_attempts, brief_id, payload, run_at, created_at,
       CASE WHEN isfinite(created_at) THEN extract(epoch FROM now() - created_at)::float8 END AS age_seconds,
       (SELECT extract(epoch FROM now() - min(created_at))::float8 FROM head WHERE isfinite(created_at))
         AS oldest_age_seconds
  FROM head
 WHERE position <= %(limit)s
 ORDER BY position
