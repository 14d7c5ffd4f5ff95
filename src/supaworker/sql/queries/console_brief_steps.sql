-- A brief's jobs for its console page, in creation order, at most %(limit)s (jobs_brief_idx): small results
-- whole (the artifacts are listed in them), long text cut.
SELECT j.id, j.type, j.queue, j.status::text AS status, j.attempts, j.max_attempts, j.worker_id, j.created_at,
       j.run_at, j.started_at, j.completed_at, j.progress, j.progress_message, j.progress_at,
       left(j.last_error, %(text_chars)s) AS last_error,
       CASE WHEN octet_length(j.result::text) <= %(result_bytes)s THEN j.result END AS result
  FROM {{schema}}.jobs_with_history j
 WHERE j.brief_id = %(id)s
 ORDER BY j.id
 LIMIT %(limit)s
