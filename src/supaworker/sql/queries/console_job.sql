-- One job for its console page: every column but the big ones, which come cut (text) and, when small enough
-- to draw as a tree, whole (jsonb); the last %(attempts)s entries of its attempt history, errors cut.
SELECT j.id, j.type, j.queue, j.status::text AS status, j.priority, j.attempts, j.max_attempts, j.run_at,
       j.timeout_seconds, left(j.last_error, %(text_chars)s) AS last_error, j.worker_id, j.lease_expires_at,
       j.brief_id, j.created_at, j.started_at, j.completed_at, j.progress, j.progress_message, j.progress_at,
       j.unique_key, j.handler_started, j.handed_back,
       CASE WHEN octet_length(j.payload::text) <= %(tree_bytes)s THEN j.payload END AS payload,
       left(j.payload::text, %(text_chars)s) AS payload_text,
       octet_length(j.payload::text) AS payload_bytes,
       CASE WHEN octet_length(j.result::text) <= %(tree_bytes)s THEN j.result END AS result,
       left(j.result::text, %(text_chars)s) AS result_text,
       octet_length(j.result::text) AS result_bytes,
       jsonb_array_length(j.errors) AS error_entries,
       (SELECT jsonb_agg(jsonb_build_object(
                 'attempt', e.value -> 'attempt', 'at', e.value -> 'at', 'started_at', e.value -> 'started_at',
                 'worker_id', e.value -> 'worker_id', 'error', left(e.value ->> 'error', %(text_chars)s))
               ORDER BY e.n)
          FROM (SELECT x.value, x.n FROM jsonb_array_elements(j.errors) WITH ORDINALITY AS x(value, n)
                 WHERE jsonb_typeof(x.value) = 'object'
                 ORDER BY x.n DESC LIMIT %(attempts)s) e) AS attempt_errors
  FROM {{schema}}.jobs_with_history j
 WHERE j.id = %(id)s
 LIMIT 1  -- as get_job.sql: history is read only for a job not in jobs
