-- 0006: the worker's statements find their rows by primary key, whatever the statistics say.
--
-- A queue's statistics are nearly always stale: ANALYZE last saw the jobs pending, so the planner believes
-- that no job is processing and none belongs to this worker. It then scans the table (or jobs_lease_idx)
-- for the "one" matching row and compares each row found with every id of the batch: 500 completions cost
-- 54 ms instead of 4 ms, and a claim of 500 read all 20,000 rows of a small table to join them by hash.
-- So these functions run with seq scans off, and the fence compares the status as text, which no index's
-- predicate matches: the only way in is the primary key, one probe per id of the batch.

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
SET enable_seqscan = off;

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

-- The claim joins the jobs it picked back to the table by id, and the rescuer the expired ones.
ALTER FUNCTION {{schema}}.claim_jobs(text, text[], integer, double precision, text[]) SET enable_seqscan = off;
ALTER FUNCTION {{schema}}.rescue_expired_jobs(integer, double precision, double precision) SET enable_seqscan = off;
