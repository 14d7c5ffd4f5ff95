-- Claims up to %(limit)s runnable jobs for one worker (see claim_jobs() in the migrations).
SELECT id, type, queue, priority, payload, attempts, max_attempts, timeout_seconds, brief_id,
       run_at, created_at, started_at
  FROM {{schema}}.claim_jobs(%(worker_id)s, %(types)s, %(limit)s, %(lease_seconds)s, %(queues)s)
