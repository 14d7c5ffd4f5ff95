-- 0010: what the operator's console needs: each attempt's start in its error entry, and failed or cancelled
-- jobs in id order.
--
-- jobs.errors holds one entry per failed attempt (attempt, error, at, worker_id). The job page shows every
-- attempt with its duration, so fail_job() and the rescue now also record when the attempt started
-- (`started_at`, the job's started_at as that attempt set it). Both are redefined exactly as they stood
-- (fail_job from 0006 with 0007's jit = off, rescue_expired_jobs_v2 from 0007) but for that one field;
-- entries written before this migration simply have no started_at.
--
-- The console lists failed and cancelled jobs newest first and retries or cancels "all matching" in
-- batches of ids walked in id order. jobs_unsuccessful_idx (0005) orders them by completed_at, so that walk
-- would read every failed job to sort it. This index is partial on the two final states a job reaches by
-- going wrong: a claim, heartbeat or completion of a healthy job never adds an entry to it (their new row
-- versions are processing or completed); only a job that fails for good or is cancelled adds one.
CREATE INDEX jobs_unsuccessful_id_idx ON {{schema}}.jobs (status, id) WHERE status IN ('failed', 'cancelled');

-- As in 0006 (with 0007's jit = off), plus the attempt's started_at in its errors entry.
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
           'attempt', j.attempts, 'error', p_error, 'at', now(), 'worker_id', p_worker_id,
           'started_at', j.started_at),
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
SET enable_seqscan = off
SET jit = off;

-- As in 0007, plus the attempt's started_at in the errors entry of a charged attempt.
CREATE OR REPLACE FUNCTION {{schema}}.rescue_expired_jobs_v2(
  p_worker_id text DEFAULT NULL,
  p_limit integer DEFAULT 1000,
  p_retry_base_seconds double precision DEFAULT 5,
  p_retry_cap_seconds double precision DEFAULT 3600,
  p_grace_seconds double precision DEFAULT 30
) RETURNS TABLE (id bigint, type text, attempts integer, status {{schema}}.job_status, worker_id text,
                 started boolean)
LANGUAGE plpgsql AS $$
DECLARE
  v_ids bigint[];
  v_types text[];
  v_attempts integer[];
  v_statuses {{schema}}.job_status[];
  v_workers text[];
  v_started boolean[];
  v_failed bigint[];
BEGIN
  IF pg_postmaster_start_time() + make_interval(secs => p_grace_seconds) > now() THEN
    RETURN;
  END IF;
  WITH expired AS (
    SELECT e.id, e.worker_id,
           e.handler_started OR coalesce(e.claim_seq <= {{schema}}.job_starts_of(e.worker_id), false)
             AS handler_started
      FROM {{schema}}.jobs e
     WHERE e.status = 'processing' AND e.lease_expires_at < now()
       AND e.worker_id IS DISTINCT FROM p_worker_id
     ORDER BY e.lease_expires_at
     LIMIT p_limit
       FOR UPDATE OF e SKIP LOCKED
  ), moved AS (
    UPDATE {{schema}}.jobs j
       SET status = CASE WHEN NOT e.handler_started OR j.attempts < j.max_attempts
                         THEN 'pending' ELSE 'failed' END::{{schema}}.job_status,
           attempts = CASE WHEN e.handler_started THEN j.attempts ELSE j.attempts - 1 END,
           run_at = CASE WHEN e.handler_started AND j.attempts < j.max_attempts
                         THEN now() + {{schema}}.retry_delay(j.attempts, p_retry_base_seconds, p_retry_cap_seconds)
                         ELSE j.run_at END,
           completed_at = CASE WHEN e.handler_started AND j.attempts >= j.max_attempts THEN now() END,
           last_error = CASE WHEN e.handler_started
                             THEN format('worker %s died while running the job (lease expired)', j.worker_id)
                             ELSE j.last_error END,
           errors = CASE WHEN e.handler_started
                         THEN j.errors || jsonb_build_object(
                           'attempt', j.attempts,
                           'error', format('worker %s died while running the job (lease expired)', j.worker_id),
                           'at', now(), 'worker_id', j.worker_id, 'started_at', j.started_at)
                         ELSE j.errors END,
           worker_id = CASE WHEN e.handler_started THEN j.worker_id END,
           started_at = CASE WHEN e.handler_started THEN j.started_at END,
           lease_expires_at = NULL,
           handler_started = false,
           claim_seq = NULL,
           handed_back = j.handed_back + CASE WHEN e.handler_started THEN 0 ELSE 1 END
      FROM expired e
     WHERE j.id = e.id
    RETURNING j.id, j.type, j.attempts, j.status, e.worker_id, e.handler_started
  )
  SELECT array_agg(m.id), array_agg(m.type), array_agg(m.attempts), array_agg(m.status),
         array_agg(m.worker_id), array_agg(m.handler_started)
    INTO v_ids, v_types, v_attempts, v_statuses, v_workers, v_started
    FROM moved m;
  IF v_ids IS NULL THEN
    RETURN;
  END IF;
  SELECT array_agg(f.id) INTO v_failed FROM unnest(v_ids, v_statuses) AS f(id, status) WHERE f.status = 'failed';
  IF v_failed IS NOT NULL THEN
    PERFORM {{schema}}.cancel_dependents(v_failed, 'cancelled: a dependency failed (worker lost)');
  END IF;
  -- A dead worker's row goes with its last job.
  PERFORM {{schema}}.forget_dead_job_starts(v_workers);
  RETURN QUERY SELECT * FROM unnest(v_ids, v_types, v_attempts, v_statuses, v_workers, v_started);
END $$
SET enable_seqscan = off
SET jit = off;
