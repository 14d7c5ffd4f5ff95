-- One job unless a live job holds its unique key: then that job, with duplicate = true
-- (insert_unique_job_v2() as it is now: sql/schema.sql).
SELECT (r.job).*, r.duplicate
  FROM {{schema}}.insert_unique_job_v2(
         %(type)s, %(queue)s, %(priority)s, %(payload)s::jsonb, %(max_attempts)s,
         coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(timeout_seconds)s, %(brief_id)s,
         %(unique_key)s, %(unique_for)s, %(fairness_key)s) AS r
