-- Records a failed attempt; returns the new status, or NULL when this worker no longer owns the attempt.
-- fail_job() as it is now: sql/schema.sql.
SELECT {{schema}}.fail_job(%(id)s, %(worker_id)s, %(error)s, %(attempt)s,
                           %(retry_base_seconds)s, %(retry_cap_seconds)s, %(retryable)s)::text
