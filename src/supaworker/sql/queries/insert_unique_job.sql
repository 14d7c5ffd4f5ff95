-- One job unless a live job holds its unique key: then that job, with duplicate = true.
SELECT (r.job).*, r.duplicate
  FROM {{schema}}.insert_unique_job(
         %(type)s, %(queue)s, %(priority)s, %(payload)s::jsonb, %(max_attempts)s,
         coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(timeout_seconds)s, %(brief_id)s,
         %(unique_key)s, %(unique_for)s) AS r
