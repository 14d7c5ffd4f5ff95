-- Retries or fails the started jobs of workers that stopped heartbeating, and hands back the ones they had
-- only claimed ahead; of the rescuer's own, only expired jobs it does not hold (%(held)s: a claim whose answer
-- it lost), uncharged; nothing in the first %(grace_seconds)s after a restart.
-- rescue_expired_jobs_v3() as it is now: sql/schema.sql.
SELECT id, type, attempts, status::text, worker_id, started
  FROM {{schema}}.rescue_expired_jobs_v3(
         %(worker_id)s, %(held)s, %(limit)s, %(retry_base_seconds)s, %(retry_cap_seconds)s, %(grace_seconds)s)
