-- The latest failed or cancelled jobs with their error (served by jobs_unsuccessful_idx).
SELECT id, type, status::text AS status, brief_id, attempts, max_attempts, last_error, payload, completed_at
  FROM {{schema}}.jobs
 WHERE status IN ('failed', 'cancelled')
 ORDER BY completed_at DESC, id DESC
 LIMIT %(limit)s
