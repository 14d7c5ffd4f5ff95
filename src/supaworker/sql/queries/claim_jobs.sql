-- Claims up to %(limit)s runnable jobs for one worker (claim_jobs_v2() in sql/schema.sql); the first
-- %(start)s in claim order are marked started, and each gets its place in the worker's claim sequence after
-- %(seq_base)s. has_parents tells the worker to load the results of the job's upstream steps first. A time
-- plain SQL stored beyond what Python reads ('infinity', year 200000) comes as the nearest end of its range,
-- a day inside it (whatever the session's time zone): read as it is, it failed the whole claim.
SELECT c.id, c.type, c.queue, c.priority, c.payload, c.attempts, c.max_attempts, c.timeout_seconds, c.brief_id,
       greatest(least(c.run_at, '9999-12-30Z'), '0001-01-02Z'),
       greatest(least(c.created_at, '9999-12-30Z'), '0001-01-02Z'), c.started_at,
       EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d WHERE d.job_id = c.id) AS has_parents,
       c.handler_started, c.claim_seq, c.handed_back > 0 AS record_start_first
  FROM {{schema}}.claim_jobs_v2(
         %(worker_id)s, %(types)s, %(limit)s, %(lease_seconds)s, %(queues)s, %(start)s, %(seq_base)s) c
