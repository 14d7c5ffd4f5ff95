-- Running jobs, longest running first (served by the partial index on processing rows), with their progress.
SELECT id, type, queue, brief_id, worker_id, attempts, max_attempts, payload, started_at, lease_expires_at,
       progress, left(progress_message, 200) AS progress_message,
       CASE WHEN isfinite(started_at) THEN extract(epoch FROM now() - started_at)::float8 END AS running_seconds
  FROM {{schema}}.jobs
 WHERE status = 'processing'
 ORDER BY started_at, id
 LIMIT %(limit)s
