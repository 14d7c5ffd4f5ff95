-- 0007: a crash charges an attempt only to jobs whose handler started; an outage is not a death; no JIT.
--
-- A worker claims jobs ahead of its free slots (prefetch). Until now every claimed job counted as started,
-- so the rescue of a dead worker charged an attempt to each job it had merely prefetched: one job that kills
-- its worker, restarted three times, failed everything that worker held. Now the database knows which
-- handlers began, at the cost of one small write per batch rather than one per job:
-- - the claim marks the jobs that go straight to free slots (`handler_started`);
-- - every claimed job gets its place in its worker's claim sequence (`claim_seq`). A worker runs the jobs it
--   claimed ahead strictly in that order, so the ones that may have begun are a prefix of it, and
--   record_job_starts() stores "up to n" in the worker's row of worker_starts (one row, updated in place,
--   in the same round trip as the worker's next claim or completions).
-- The rescue charges only started jobs and hands the others back as if they had never been claimed. A slot
-- does not wait for that record before it starts a job, so a job that killed its worker within a round trip
-- of starting is handed back uncharged too; it is then `handed_back`, and its next run waits for the record
-- before it starts: a job that kills its worker is charged at least every other time, and cannot loop.
--
-- The rescue also gives live owners a chance after an outage: nothing is rescued until the server has been
-- up for one lease (every lease expired while it was down, for the living as for the dead), and a worker
-- never rescues its own jobs.
--
-- Every hot function runs with JIT off: `enable_seqscan = off` prices a disabled plan at ~1e10, above
-- jit_above_cost, so with a pause or a limit set each claim compiled itself (300 ms instead of 1 ms).

ALTER TABLE {{schema}}.jobs
  ADD COLUMN handler_started boolean NOT NULL DEFAULT false,
  ADD COLUMN claim_seq bigint,
  ADD COLUMN handed_back integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN {{schema}}.jobs.handler_started IS
  'processing only: the claim sent this attempt straight to a free slot (see also claim_seq)';
COMMENT ON COLUMN {{schema}}.jobs.claim_seq IS
  'processing only: place in its worker''s claim sequence; begun if <= worker_starts.started_through';
COMMENT ON COLUMN {{schema}}.jobs.handed_back IS
  'times a dead worker''s job was handed back uncharged, as not begun; then its start is recorded before it runs';

-- How far each live worker has started the jobs it claimed ahead (see above). A row goes when its worker
-- stops, or when the rescue has handed back the last job of a dead one.
CREATE TABLE {{schema}}.worker_starts (
  worker_id       text PRIMARY KEY,
  started_through bigint NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);  -- one row per worker rewritten per batch of jobs: room for HOT updates

-- Claims up to p_limit runnable jobs in claim order; the first p_start of them are marked started (they go
-- straight to free slots), and the n-th gets claim_seq p_seq_base + n.
CREATE FUNCTION {{schema}}.claim_jobs_v2(
  p_worker_id text,
  p_types text[] DEFAULT NULL,
  p_limit integer DEFAULT 1,
  p_lease_seconds double precision DEFAULT 30,
  p_queues text[] DEFAULT NULL,
  p_start integer DEFAULT NULL,
  p_seq_base bigint DEFAULT 0
) RETURNS SETOF {{schema}}.jobs
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_ids bigint[];
  v_paused_types text[];
  v_paused_queues text[];
  v_limited text[];
  v_allowed integer[];
  v_any_free boolean;
BEGIN
  IF NOT EXISTS (
       SELECT 1 FROM {{schema}}.job_controls k
        WHERE (k.scope = 'type' AND (p_types IS NULL OR k.name = ANY (p_types)))
           OR (k.scope = 'queue' AND (p_queues IS NULL OR k.name = ANY (p_queues)))) THEN
    v_ids := ARRAY(
      SELECT c.id FROM {{schema}}.jobs c
       WHERE c.status = 'pending'
         AND c.run_at <= now()
         AND (p_types IS NULL OR c.type = ANY (p_types))
         AND (p_queues IS NULL OR c.queue = ANY (p_queues))
       ORDER BY c.priority, c.run_at, c.id
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED);
  ELSE
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
             k.max_running - (SELECT count(*) FROM {{schema}}.jobs r
                               WHERE r.type = k.name AND r.status = 'processing'),
             CASE WHEN k.window_started_at IS NULL
                    OR k.window_started_at + make_interval(secs => k.rate_period_seconds) <= now()
                  THEN k.rate_limit ELSE k.rate_limit - k.window_count END)) ORDER BY k.name), '{}')
      INTO v_limited, v_allowed
      FROM {{schema}}.job_controls k
     WHERE k.scope = 'type' AND NOT k.paused AND (k.max_running IS NOT NULL OR k.rate_limit IS NOT NULL)
       AND (p_types IS NULL OR k.name = ANY (p_types));

    -- When every type asked for is limited or paused, the unlimited part has nothing to find: skip it
    -- rather than walk every pending job of those types (a drain with a limit set ran at a quarter speed).
    v_any_free := p_types IS NULL
      OR EXISTS (SELECT 1 FROM unnest(p_types) t WHERE t <> ALL (v_limited) AND t <> ALL (v_paused_types));

    v_ids := ARRAY(
      WITH free AS (
        SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
         WHERE c.status = 'pending'
           AND c.run_at <= now()
           AND (p_types IS NULL OR c.type = ANY (p_types))
           AND (p_queues IS NULL OR c.queue = ANY (p_queues))
           AND c.type <> ALL (v_limited) AND c.type <> ALL (v_paused_types) AND c.queue <> ALL (v_paused_queues)
           AND v_any_free
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
      )
      SELECT u.id FROM (SELECT * FROM free UNION ALL SELECT * FROM limited) u
       ORDER BY u.priority, u.run_at, u.id
       LIMIT p_limit);

    -- Rate windows: a claim after the window ran out opens a new one (BullMQ's fixed-window limiter).
    UPDATE {{schema}}.job_controls k
       SET window_started_at = CASE WHEN k.window_started_at IS NULL
                                      OR k.window_started_at + make_interval(secs => k.rate_period_seconds) <= now()
                                    THEN now() ELSE k.window_started_at END,
           window_count = CASE WHEN k.window_started_at IS NULL
                                 OR k.window_started_at + make_interval(secs => k.rate_period_seconds) <= now()
                               THEN n.claimed ELSE k.window_count + n.claimed END
      FROM (SELECT c.type, count(*)::integer AS claimed FROM {{schema}}.jobs c
             WHERE c.id = ANY (v_ids) GROUP BY c.type) n
     WHERE k.scope = 'type' AND k.name = n.type AND k.rate_limit IS NOT NULL;
  END IF;

  IF cardinality(v_ids) = 0 THEN
    RETURN;
  END IF;
  -- Returned in no particular order: the worker sorts by claim_seq.
  RETURN QUERY
  UPDATE {{schema}}.jobs j
     SET status = 'processing',
         worker_id = p_worker_id,
         attempts = j.attempts + 1,
         started_at = now(),
         lease_expires_at = now() + make_interval(secs => p_lease_seconds),
         handler_started = o.n <= coalesce(p_start, p_limit),
         claim_seq = p_seq_base + o.n
    FROM unnest(v_ids) WITH ORDINALITY AS o(id, n)
   WHERE j.id = o.id
  RETURNING j.*;
END $$
SET enable_sort = off
SET enable_seqscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan;

-- The release before this one claims through this signature: every job it claims counts as started.
CREATE OR REPLACE FUNCTION {{schema}}.claim_jobs(
  p_worker_id text,
  p_types text[] DEFAULT NULL,
  p_limit integer DEFAULT 1,
  p_lease_seconds double precision DEFAULT 30,
  p_queues text[] DEFAULT NULL
) RETURNS SETOF {{schema}}.jobs
LANGUAGE sql VOLATILE AS $$
  SELECT * FROM {{schema}}.claim_jobs_v2(p_worker_id, p_types, p_limit, p_lease_seconds, p_queues, p_limit, 0)
$$
SET jit = off;

-- Records that the worker may start every job it claimed up to place p_through of its claim sequence (never
-- moving back). One row per worker, so a batch of starts is one small write.
-- Its commit does not wait for the WAL to reach disk: losing it in a server crash only means that, should
-- the worker die too, those jobs are handed back uncharged (and marked handed_back).
-- worker_starts is read and written only through these functions, as their owner: a worker role of the
-- user's own, with policies on the jobs tables (docs/supabase.md), needs none on this one.
CREATE FUNCTION {{schema}}.record_job_starts(p_worker_id text, p_through bigint) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT set_config('synchronous_commit', 'off', true);
  INSERT INTO {{schema}}.worker_starts AS w (worker_id, started_through) VALUES (p_worker_id, p_through)
  ON CONFLICT (worker_id) DO UPDATE
    SET started_through = greatest(w.started_through, excluded.started_through), updated_at = now()
$$
SET jit = off;

-- A worker that stops has no starts to remember.
CREATE FUNCTION {{schema}}.forget_job_starts(p_worker_id text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  DELETE FROM {{schema}}.worker_starts WHERE worker_id = p_worker_id
$$;

-- How far a worker has started the jobs it claimed ahead (NULL: none recorded).
CREATE FUNCTION {{schema}}.job_starts_of(p_worker_id text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT started_through FROM {{schema}}.worker_starts WHERE worker_id = p_worker_id
$$;

-- Drops the rows of dead workers that hold no job any more (after a rescue).
CREATE FUNCTION {{schema}}.forget_dead_job_starts(p_worker_ids text[]) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  DELETE FROM {{schema}}.worker_starts w
   WHERE w.worker_id = ANY (p_worker_ids)
     AND NOT EXISTS (SELECT 1 FROM {{schema}}.jobs j WHERE j.worker_id = w.worker_id AND j.status = 'processing')
$$;

-- Jobs whose worker stopped heartbeating. A job whose handler had started is retried with backoff, or failed
-- when its attempts are used up (the lost attempt counts, so a job that kills its worker cannot loop
-- forever). A job that was only claimed ahead goes back to pending as it was, uncharged.
-- Nothing is rescued until the server has been up for p_grace_seconds (an outage expires every lease, the
-- live owners' too), nor what belongs to p_worker_id (the rescuer's own worker, alive by definition).
CREATE FUNCTION {{schema}}.rescue_expired_jobs_v2(
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
                           'at', now(), 'worker_id', j.worker_id)
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

-- The release before this one rescues through this signature: it gets the same rules, without knowing its
-- own worker or lease (the default lease is the grace).
CREATE OR REPLACE FUNCTION {{schema}}.rescue_expired_jobs(
  p_limit integer DEFAULT 1000,
  p_retry_base_seconds double precision DEFAULT 5,
  p_retry_cap_seconds double precision DEFAULT 3600
) RETURNS TABLE (id bigint, type text, attempts integer, status {{schema}}.job_status, worker_id text)
LANGUAGE sql AS $$
  SELECT r.id, r.type, r.attempts, r.status, r.worker_id
    FROM {{schema}}.rescue_expired_jobs_v2(NULL, p_limit, p_retry_base_seconds, p_retry_cap_seconds) r
$$;

-- Extends the leases of the jobs a live worker still owns; returns those ids (a missing id was lost). It never
-- waits for a row lock: a row locked now is being completed, failed, cancelled or rescued, and waiting for it
-- while that statement waits for a row this one holds deadlocked a worker with itself (its completion locks
-- in batch order, a bitmap scan here in heap order). Such a row counts as owned if its last committed
-- version says so; its lease is renewed by the next heartbeat if it is still running then.
CREATE OR REPLACE FUNCTION {{schema}}.heartbeat_jobs(
  p_worker_id text, p_ids bigint[], p_lease_seconds double precision DEFAULT 30
) RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
  WITH locked AS (
    SELECT j.id FROM {{schema}}.jobs j
     WHERE j.id = ANY (p_ids) AND j.worker_id = p_worker_id AND j.status::text = 'processing'
       FOR UPDATE SKIP LOCKED
  ), renewed AS (
    UPDATE {{schema}}.jobs j
       SET lease_expires_at = now() + make_interval(secs => p_lease_seconds)
      FROM locked
     WHERE j.id = locked.id
    RETURNING j.id
  )
  SELECT id FROM renewed
  UNION ALL
  SELECT j.id FROM {{schema}}.jobs j
   WHERE j.id = ANY (p_ids) AND j.worker_id = p_worker_id AND j.status::text = 'processing'
     AND j.id NOT IN (SELECT id FROM locked)
$$
SET enable_seqscan = off
SET jit = off;

-- The rest of the worker's hot functions: never JIT-compiled (see above).
ALTER FUNCTION {{schema}}.complete_jobs(text, bigint[], integer[], jsonb[]) SET jit = off;
ALTER FUNCTION {{schema}}.fail_job(bigint, text, text, integer, double precision, double precision, boolean)
  SET jit = off;
ALTER FUNCTION {{schema}}.release_jobs(text, bigint[], integer[]) SET jit = off;
ALTER FUNCTION {{schema}}.update_job_progress(text, bigint[], integer[], real[], text[]) SET jit = off;

-- Workers over PostgREST run as service_role. (PUBLIC's EXECUTE on the new functions is taken back by
-- secure_schema(), which `supaworker migrate` runs after every upgrade: see 0009.)
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    GRANT EXECUTE ON FUNCTION
      {{schema}}.claim_jobs_v2(text, text[], integer, double precision, text[], integer, bigint),
      {{schema}}.record_job_starts(text, bigint),
      {{schema}}.forget_job_starts(text),
      {{schema}}.job_starts_of(text),
      {{schema}}.forget_dead_job_starts(text[]),
      {{schema}}.rescue_expired_jobs_v2(text, integer, double precision, double precision, double precision)
    TO service_role;
    GRANT SELECT, INSERT, UPDATE, DELETE ON {{schema}}.worker_starts TO service_role;
    CREATE POLICY service_role_all ON {{schema}}.worker_starts TO service_role USING (true) WITH CHECK (true);
  END IF;
END $$;

-- Like every supaworker table: nothing for PUBLIC (or anon and authenticated), row-level security on.
REVOKE ALL ON {{schema}}.worker_starts FROM PUBLIC;
ALTER TABLE {{schema}}.worker_starts ENABLE ROW LEVEL SECURITY;
