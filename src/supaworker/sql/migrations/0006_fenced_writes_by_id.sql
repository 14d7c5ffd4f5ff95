-- 0006: the worker's statements find their rows by primary key, whatever the statistics say.
--
-- A queue's statistics are nearly always stale: ANALYZE last saw the jobs pending, so the planner believes
-- that no job is processing and none belongs to this worker. It then scans the table (or jobs_lease_idx)
-- for the "one" matching row and compares each row found with every id of the batch: 500 completions cost
-- 54 ms instead of 4 ms, and a claim of 500 read all 20,000 rows of a small table to join them by hash.
-- So these functions run with seq scans off, and the fence compares the status as text, which no index's
-- predicate matches: the only way in is the primary key, one probe per id of the batch. That plan is right
-- for any batch, so complete_jobs keeps one generic plan instead of planning each call again.

CREATE OR REPLACE FUNCTION {{schema}}.complete_jobs(
  p_worker_id text, p_ids bigint[], p_attempts integer[], p_results jsonb[]
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_done bigint[];
BEGIN
  WITH done AS (
    UPDATE {{schema}}.jobs j
       SET status = 'completed', result = r.result, completed_at = now(), lease_expires_at = NULL
      FROM unnest(p_ids, p_attempts, p_results) AS r(id, attempt, result)
     WHERE j.id = r.id AND j.worker_id = p_worker_id AND j.attempts = r.attempt
       AND j.status::text = 'processing'
    RETURNING j.id
  )
  SELECT array_agg(id) INTO v_done FROM done;
  IF v_done IS NOT NULL THEN
    PERFORM {{schema}}.unblock_dependents(v_done);
    RETURN QUERY SELECT unnest(v_done);
  END IF;
END $$
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan;

CREATE OR REPLACE FUNCTION {{schema}}.fail_job(
  p_job_id bigint,
  p_worker_id text,
  p_error text,
  p_attempt integer DEFAULT NULL,
  p_retry_base_seconds double precision DEFAULT 5,
  p_retry_cap_seconds double precision DEFAULT 3600,
  p_retryable boolean DEFAULT true
) RETURNS {{schema}}.job_status
LANGUAGE plpgsql AS $$
DECLARE
  v_status {{schema}}.job_status;
BEGIN
  UPDATE {{schema}}.jobs j
     SET status = CASE WHEN p_retryable AND j.attempts < j.max_attempts
                       THEN 'pending' ELSE 'failed' END::{{schema}}.job_status,
         run_at = CASE WHEN p_retryable AND j.attempts < j.max_attempts
                       THEN now() + {{schema}}.retry_delay(j.attempts, p_retry_base_seconds, p_retry_cap_seconds)
                       ELSE j.run_at END,
         completed_at = CASE WHEN p_retryable AND j.attempts < j.max_attempts THEN NULL ELSE now() END,
         last_error = p_error,
         errors = j.errors || jsonb_build_object(
           'attempt', j.attempts, 'error', p_error, 'at', now(), 'worker_id', p_worker_id),
         lease_expires_at = NULL
   WHERE j.id = p_job_id AND j.worker_id = p_worker_id AND j.status::text = 'processing'
     AND j.attempts = coalesce(p_attempt, j.attempts)
  RETURNING j.status INTO v_status;
  IF v_status = 'failed' THEN
    PERFORM {{schema}}.cancel_dependents(
      ARRAY[p_job_id], format('cancelled: dependency %s failed: %s', p_job_id, p_error));
  END IF;
  RETURN v_status;
END $$
SET enable_seqscan = off;

CREATE OR REPLACE FUNCTION {{schema}}.heartbeat_jobs(
  p_worker_id text, p_ids bigint[], p_lease_seconds double precision DEFAULT 30
) RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
  UPDATE {{schema}}.jobs
     SET lease_expires_at = now() + make_interval(secs => p_lease_seconds)
   WHERE id = ANY (p_ids) AND worker_id = p_worker_id AND status::text = 'processing'
  RETURNING id
$$
SET enable_seqscan = off;

CREATE OR REPLACE FUNCTION {{schema}}.release_jobs(p_worker_id text, p_ids bigint[], p_attempts integer[])
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY
  UPDATE {{schema}}.jobs j
     SET status = 'pending', attempts = j.attempts - 1, run_at = now(),
         worker_id = NULL, lease_expires_at = NULL, started_at = NULL
    FROM unnest(p_ids, p_attempts) AS r(id, attempt)
   WHERE j.id = r.id AND j.worker_id = p_worker_id AND j.attempts = r.attempt
     AND j.status::text = 'processing'
  RETURNING j.id;
  IF FOUND THEN
    PERFORM pg_notify({{channel}}, '');
  END IF;
END $$
SET enable_seqscan = off;

CREATE OR REPLACE FUNCTION {{schema}}.update_job_progress(
  p_worker_id text, p_ids bigint[], p_attempts integer[], p_percents real[], p_messages text[]
) RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
  UPDATE {{schema}}.jobs j
     SET progress = r.percent, progress_message = r.message, progress_at = now()
    FROM unnest(p_ids, p_attempts, p_percents, p_messages) AS r(id, attempt, percent, message)
   WHERE j.id = r.id AND j.worker_id = p_worker_id AND j.attempts = r.attempt
     AND j.status::text = 'processing'
  RETURNING j.id
$$
SET enable_seqscan = off;

-- As in 0003, but the claimed jobs are matched by `id = ANY (ARRAY(...))`, a primary-key lookup of the ids
-- picked, whatever LIMIT the planner assumes. So one generic plan serves every call, and the claim is not
-- planned again each time (planning was a fifth of its cost for small batches).
CREATE OR REPLACE FUNCTION {{schema}}.claim_jobs(
  p_worker_id text,
  p_types text[] DEFAULT NULL,
  p_limit integer DEFAULT 1,
  p_lease_seconds double precision DEFAULT 30,
  p_queues text[] DEFAULT NULL
) RETURNS SETOF {{schema}}.jobs
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_paused_types text[];
  v_paused_queues text[];
  v_limited text[];
  v_allowed integer[];
BEGIN
  IF NOT EXISTS (
       SELECT 1 FROM {{schema}}.job_controls k
        WHERE (k.scope = 'type' AND (p_types IS NULL OR k.name = ANY (p_types)))
           OR (k.scope = 'queue' AND (p_queues IS NULL OR k.name = ANY (p_queues)))) THEN
    RETURN QUERY
    UPDATE {{schema}}.jobs j
       SET status = 'processing',
           worker_id = p_worker_id,
           attempts = j.attempts + 1,
           started_at = now(),
           lease_expires_at = now() + make_interval(secs => p_lease_seconds)
     WHERE j.id = ANY (ARRAY(
             SELECT c.id FROM {{schema}}.jobs c
              WHERE c.status = 'pending'
                AND c.run_at <= now()
                AND (p_types IS NULL OR c.type = ANY (p_types))
                AND (p_queues IS NULL OR c.queue = ANY (p_queues))
              ORDER BY c.priority, c.run_at, c.id
              LIMIT p_limit
              FOR UPDATE SKIP LOCKED))
    RETURNING j.*;
    RETURN;
  END IF;

  SELECT coalesce(array_agg(k.name) FILTER (WHERE k.scope = 'type' AND k.paused), '{}'),
         coalesce(array_agg(k.name) FILTER (WHERE k.scope = 'queue' AND k.paused), '{}')
    INTO v_paused_types, v_paused_queues
    FROM {{schema}}.job_controls k
   WHERE k.paused;

  PERFORM 1 FROM {{schema}}.job_controls k
   WHERE k.scope = 'type' AND NOT k.paused AND (k.max_running IS NOT NULL OR k.rate_limit IS NOT NULL)
     AND (p_types IS NULL OR k.name = ANY (p_types))
   ORDER BY k.name
     FOR UPDATE;

  SELECT coalesce(array_agg(k.name ORDER BY k.name), '{}'),
         coalesce(array_agg(greatest(0, least(
           p_limit,
           k.max_running - (SELECT count(*) FROM {{schema}}.jobs r WHERE r.type = k.name AND r.status = 'processing'),
           CASE WHEN k.window_started_at IS NULL
                  OR k.window_started_at + make_interval(secs => k.rate_period_seconds) <= now()
                THEN k.rate_limit ELSE k.rate_limit - k.window_count END)) ORDER BY k.name), '{}')
    INTO v_limited, v_allowed
    FROM {{schema}}.job_controls k
   WHERE k.scope = 'type' AND NOT k.paused AND (k.max_running IS NOT NULL OR k.rate_limit IS NOT NULL)
     AND (p_types IS NULL OR k.name = ANY (p_types));

  RETURN QUERY
  WITH free AS (
    SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
     WHERE c.status = 'pending'
       AND c.run_at <= now()
       AND (p_types IS NULL OR c.type = ANY (p_types))
       AND (p_queues IS NULL OR c.queue = ANY (p_queues))
       AND c.type <> ALL (v_limited) AND c.type <> ALL (v_paused_types) AND c.queue <> ALL (v_paused_queues)
     ORDER BY c.priority, c.run_at, c.id
     LIMIT p_limit
       FOR UPDATE SKIP LOCKED
  ), limited AS (
    SELECT l.id, l.priority, l.run_at
      FROM unnest(v_limited, v_allowed) AS a(type, allowed)
     CROSS JOIN LATERAL (
           SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
            WHERE c.status = 'pending'
              AND c.run_at <= now()
              AND c.type = a.type
              AND (p_queues IS NULL OR c.queue = ANY (p_queues))
              AND c.queue <> ALL (v_paused_queues)
            ORDER BY c.priority, c.run_at, c.id
            LIMIT a.allowed
              FOR UPDATE SKIP LOCKED) l
     WHERE a.allowed > 0
  ), picked AS (
    SELECT u.id FROM (SELECT * FROM free UNION ALL SELECT * FROM limited) u
     ORDER BY u.priority, u.run_at, u.id
     LIMIT p_limit
  ), claimed AS (
    UPDATE {{schema}}.jobs j
       SET status = 'processing',
           worker_id = p_worker_id,
           attempts = j.attempts + 1,
           started_at = now(),
           lease_expires_at = now() + make_interval(secs => p_lease_seconds)
     WHERE j.id = ANY (ARRAY(SELECT id FROM picked))
    RETURNING j.*
  ), counted AS (
    -- Rate windows: a claim after the window ran out opens a new one (BullMQ's fixed-window limiter).
    UPDATE {{schema}}.job_controls k
       SET window_started_at = CASE WHEN k.window_started_at IS NULL
                                      OR k.window_started_at + make_interval(secs => k.rate_period_seconds) <= now()
                                    THEN now() ELSE k.window_started_at END,
           window_count = CASE WHEN k.window_started_at IS NULL
                                 OR k.window_started_at + make_interval(secs => k.rate_period_seconds) <= now()
                               THEN n.claimed ELSE k.window_count + n.claimed END
      FROM (SELECT type, count(*)::integer AS claimed FROM claimed GROUP BY type) n
     WHERE k.scope = 'type' AND k.name = n.type AND k.rate_limit IS NOT NULL
  )
  SELECT * FROM claimed;
END $$
SET enable_sort = off
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan;

-- The rescuer joins the expired jobs back to the table by id.
ALTER FUNCTION {{schema}}.rescue_expired_jobs(integer, double precision, double precision) SET enable_seqscan = off;
