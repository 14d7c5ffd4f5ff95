-- Retries or fails jobs whose worker stopped heartbeating.
SELECT id, type, attempts, status::text, worker_id
  FROM {{schema}}.rescue_expired_jobs(%(limit)s, %(retry_base_seconds)s, %(retry_cap_seconds)s)
