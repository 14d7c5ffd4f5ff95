-- One job, runnable from run_at (or now plus delay seconds); `waiting` when it has unfinished parents.
INSERT INTO {{schema}}.jobs (type, queue, status, priority, payload, max_attempts, run_at, timeout_seconds, brief_id,
                             fairness_key)
VALUES (%(type)s, %(queue)s, %(status)s::{{schema}}.job_status, %(priority)s, %(payload)s::jsonb, %(max_attempts)s,
        coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(timeout_seconds)s, %(brief_id)s,
        %(fairness_key)s)
RETURNING *
