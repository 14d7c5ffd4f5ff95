-- Pauses and limits, with how many jobs of each limited type run now (from jobs_type_status_idx).
SELECT k.scope, k.name, k.paused, k.max_running, k.rate_limit, k.rate_period_seconds,
       k.window_started_at, k.window_count, k.updated_at,
       CASE WHEN k.scope = 'type'
            THEN (SELECT count(*) FROM {{schema}}.jobs j WHERE j.type = k.name AND j.status = 'processing')
       END AS running
  FROM {{schema}}.job_controls k
 ORDER BY k.scope, k.name
