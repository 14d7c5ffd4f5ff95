-- Jobs that reached a final state after %(since)s (the change feed), oldest first, with how long they ran
-- and waited. Served by jobs_completed_at_idx, so it reads only recent rows. A finishing time later than now
-- (plain SQL can store 'infinity', or year 200000) is no recent finish: read, it would move the feed's
-- watermark past every job still to finish. Durations over an infinite time are unknown (NULL).
SELECT id, type, status::text AS status, brief_id, completed_at,
       CASE WHEN isfinite(completed_at) AND isfinite(started_at)
            THEN extract(epoch FROM completed_at - started_at)::float8 END AS duration_seconds,
       CASE WHEN isfinite(started_at) AND isfinite(run_at)
            THEN extract(epoch FROM started_at - run_at)::float8 END AS queue_latency_seconds
  FROM {{schema}}.jobs
 WHERE completed_at IS NOT NULL AND completed_at > %(since)s AND completed_at <= now() + interval '1 minute'
 ORDER BY completed_at, id
 LIMIT %(limit)s
