-- 0027: a worker gets back the jobs a claim gave it whose answer it never received.
--
-- A claim that commits and then loses its answer (a connection that drops after the commit, a gateway timeout
-- in front of PostgREST) leaves its jobs `processing` under the claiming worker, which does not know of them:
-- it never renews their leases, and rescue_expired_jobs_v2() skips the rescuer's own jobs, so a worker running
-- alone never got them back (20 of 20 stuck). rescue_expired_jobs_v3() also takes the caller's expired jobs
-- that are not among those it holds (p_held: what its heartbeat renews; NULL skips them all, as v2), by the
-- rule it applies to a dead worker's: charged when its start marks say the handler may have begun. A job the
-- worker did start can also end up here (an outcome it could not write), so "not held" cannot mean "never
-- ran": handed back uncharged, a job that kills its outcome every time would loop for ever. v2 becomes
-- a shim of v3 with p_held NULL (its own behaviour, one body for both); the previous release calls it.

CREATE FUNCTION {{schema}}.rescue_expired_jobs_v3(
  p_worker_id text, p_held bigint[], p_limit integer DEFAULT 1000, p_retry_base_seconds double precision DEFAULT 5,
  p_retry_cap_seconds double precision DEFAULT 3600, p_grace_seconds double precision DEFAULT 30)
 RETURNS TABLE(id bigint, type text, attempts integer, status {{schema}}.job_status, worker_id text, started boolean)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
AS $function$
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
             AS handler_started,
           e.worker_id IS NOT DISTINCT FROM p_worker_id AS mine
      FROM {{schema}}.jobs e
     WHERE e.status = 'processing' AND e.lease_expires_at < now()
       AND (e.worker_id IS DISTINCT FROM p_worker_id OR (p_held IS NOT NULL AND e.id <> ALL (p_held)))
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
           last_error = CASE WHEN e.handler_started THEN m.error ELSE j.last_error END,
           errors = CASE WHEN e.handler_started
                         THEN j.errors || jsonb_build_object(
                           'attempt', j.attempts, 'error', m.error,
                           'at', now(), 'worker_id', j.worker_id, 'started_at', j.started_at)
                         ELSE j.errors END,
           worker_id = CASE WHEN e.handler_started THEN j.worker_id END,
           started_at = CASE WHEN e.handler_started THEN j.started_at END,
           lease_expires_at = NULL,
           handler_started = false,
           claim_seq = NULL,
           handed_back = j.handed_back + CASE WHEN e.handler_started THEN 0 ELSE 1 END
      FROM expired e
      CROSS JOIN LATERAL (SELECT CASE WHEN e.mine
        THEN format('worker %s no longer held the job when its lease expired (its claim''s answer lost, or the outcome'
                    ' not written)', e.worker_id)
        ELSE format('worker %s died while running the job (lease expired)', e.worker_id) END AS error) m
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
  -- A dead worker's row goes with its last job; the caller is alive and keeps its own.
  PERFORM {{schema}}.forget_dead_job_starts(array_remove(v_workers, p_worker_id));
  RETURN QUERY SELECT * FROM unnest(v_ids, v_types, v_attempts, v_statuses, v_workers, v_started);
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.rescue_expired_jobs_v2(
  p_worker_id text DEFAULT NULL, p_limit integer DEFAULT 1000, p_retry_base_seconds double precision DEFAULT 5,
  p_retry_cap_seconds double precision DEFAULT 3600, p_grace_seconds double precision DEFAULT 30)
 RETURNS TABLE(id bigint, type text, attempts integer, status {{schema}}.job_status, worker_id text, started boolean)
 LANGUAGE sql
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
AS $function$
  SELECT * FROM {{schema}}.rescue_expired_jobs_v3(
    p_worker_id, NULL, p_limit, p_retry_base_seconds, p_retry_cap_seconds, p_grace_seconds)
$function$;

INSERT INTO {{schema}}.owned_objects (type, identity)
SELECT o.type, o.identity
  FROM pg_identify_object(
         'pg_proc'::regclass,
         '{{schema}}.rescue_expired_jobs_v3(text, bigint[], integer, double precision, double precision, double precision)'
           ::regprocedure, 0) o
ON CONFLICT DO NOTHING;
