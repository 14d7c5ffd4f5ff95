-- Retries or fails the started jobs of workers that stopped heartbeating, and hands back the ones they had
-- only claimed ahead; never the rescuer's own, and nothing in the first %(grace_seconds)s after a restart.
-- rescue_expired_jobs_v2() as it is now: sql/schema.sql.
SELECT id, type, attempts, status::text, worker_id, started
  FROM {{schema}}.rescue_expired_jobs_v2(
         %(worker_id)s, %(limit)s, %(retry_base_seconds)s, %(retry_cap_seconds)s, %(grace_seconds)s)
