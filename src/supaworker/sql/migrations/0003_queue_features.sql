-- 0003: queue features: unique jobs, pause/resume, global concurrency and rate limits, running-job
-- cancellation, progress, periodic (cron) jobs, a leader lease for maintenance, and pruning.
--
-- Redefined from 0001 with CREATE OR REPLACE, same signatures so existing callers keep working:
--   claim_jobs()   honours pauses and limits (plpgsql now; unchanged single UPDATE when none apply; keeps
--                  0001's enable_sort = off so it walks the runnable index in claim order)
--   cancel_job()   also notifies the running job's worker so it stops at once, not at its next heartbeat
--   active_jobs    gains the progress columns (appended, so the view's existing columns are untouched)

-- New columns are NULL on existing rows: adding them rewrites nothing.
ALTER TABLE {{schema}}.jobs
  ADD COLUMN unique_key text,              -- idempotency key; held while the job is live (see insert_unique_job)
  ADD COLUMN unique_until timestamptz,     -- the key is released after this (NULL: held until failed/cancelled/pruned)
  ADD COLUMN progress real,                -- percent 0..100 reported by the running handler
  ADD COLUMN progress_message text,
  ADD COLUMN progress_at timestamptz;

-- NOT VALID: every existing row has NULL here, so a validating scan (under lock) would check nothing.
ALTER TABLE {{schema}}.jobs
  ADD CONSTRAINT jobs_unique_key_valid
    CHECK (unique_key IS NULL OR (length(unique_key) BETWEEN 1 AND 512)) NOT VALID,
  ADD CONSTRAINT jobs_progress_range
    CHECK (progress IS NULL OR (progress >= 0 AND progress <= 100)) NOT VALID;

-- One holder per key: the database, not the client, decides which insert is the duplicate.
CREATE UNIQUE INDEX jobs_unique_key_idx ON {{schema}}.jobs (unique_key) WHERE unique_key IS NOT NULL;
-- Finished jobs by age: what the pruner deletes, without scanning the live rows.
CREATE INDEX jobs_finished_idx ON {{schema}}.jobs (status, completed_at)
  WHERE status IN ('completed', 'failed', 'cancelled');

-- Inserts a job unless a live job holds the same unique key; then returns that job with duplicate = true.
-- A holder that failed, was cancelled, or whose unique_until has passed gives its key up to the newcomer.
CREATE FUNCTION {{schema}}.insert_unique_job(
  p_type text,
  p_queue text,
  p_priority integer,
  p_payload jsonb,
  p_max_attempts integer,
  p_run_at timestamptz,
  p_timeout_seconds double precision,
  p_brief_id uuid,
  p_unique_key text,
  p_unique_for_seconds double precision DEFAULT NULL
) RETURNS TABLE (duplicate boolean, job {{schema}}.jobs)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_row {{schema}}.jobs;
BEGIN
  IF p_unique_key IS NULL THEN
    RAISE EXCEPTION 'insert_unique_job needs a unique key' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Three rounds at most: each lost round means another transaction released or took the key meanwhile.
  FOR v_round IN 1..3 LOOP
    INSERT INTO {{schema}}.jobs AS j (type, queue, priority, payload, max_attempts, run_at, timeout_seconds,
                                      brief_id, unique_key, unique_until)
    VALUES (p_type, p_queue, p_priority, p_payload, p_max_attempts, coalesce(p_run_at, now()), p_timeout_seconds,
            p_brief_id, p_unique_key, now() + make_interval(secs => p_unique_for_seconds))
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
    RETURNING j.* INTO v_row;
    IF FOUND THEN
      RETURN QUERY SELECT false, v_row;
      RETURN;
    END IF;
    SELECT * INTO v_row FROM {{schema}}.jobs WHERE unique_key = p_unique_key FOR UPDATE;
    CONTINUE WHEN NOT FOUND;  -- the holder was pruned or released meanwhile
    IF v_row.status IN ('failed', 'cancelled') OR v_row.unique_until <= now() THEN
      UPDATE {{schema}}.jobs SET unique_key = NULL WHERE id = v_row.id;
      CONTINUE;
    END IF;
    RETURN QUERY SELECT true, v_row;
    RETURN;
  END LOOP;
  RAISE EXCEPTION 'could not insert job with unique key % (contended; retry)', p_unique_key
    USING ERRCODE = 'serialization_failure';
END $$;

-- Pauses and limits, one row per job type or queue. A row exists only while something is set, so the
-- claim's check for "anything applies to me" stays a probe of a tiny table.
CREATE TABLE {{schema}}.job_controls (
  scope               text NOT NULL,
  name                text NOT NULL,
  paused              boolean NOT NULL DEFAULT false,
  max_running         integer,             -- global cap on processing jobs of this type
  rate_limit          integer,             -- at most this many claims per rate_period_seconds (fixed window)
  rate_period_seconds double precision,
  window_started_at   timestamptz,         -- the current rate window, opened by its first claim
  window_count        integer NOT NULL DEFAULT 0,
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, name),
  CONSTRAINT job_controls_scope_valid CHECK (scope IN ('type', 'queue')),
  CONSTRAINT job_controls_name_valid CHECK (length(btrim(name)) > 0 AND length(name) <= 128),
  CONSTRAINT job_controls_limits_on_types CHECK (scope = 'type' OR (max_running IS NULL AND rate_limit IS NULL)),
  CONSTRAINT job_controls_max_running_positive CHECK (max_running IS NULL OR max_running >= 1),
  CONSTRAINT job_controls_rate_complete CHECK ((rate_limit IS NULL) = (rate_period_seconds IS NULL)),
  CONSTRAINT job_controls_rate_positive CHECK (rate_limit IS NULL OR (rate_limit >= 1 AND rate_period_seconds > 0))
);

-- Claims up to p_limit runnable jobs for one worker. Without pauses or limits for this worker's types and
-- queues it is the single UPDATE of 0001. Otherwise the limited types' control rows are locked first (in
-- name order: claimers never deadlock), and the running counts are read after the locks, by a later
-- statement with a fresh snapshot, so two workers can never both take the last slot. Running jobs of a
-- type are counted through jobs_lease_idx (every processing job), so that count costs what is running.
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
     WHERE j.id IN (
             SELECT c.id FROM {{schema}}.jobs c
              WHERE c.status = 'pending'
                AND c.run_at <= now()
                AND (p_types IS NULL OR c.type = ANY (p_types))
                AND (p_queues IS NULL OR c.queue = ANY (p_queues))
              ORDER BY c.priority, c.run_at, c.id
              LIMIT p_limit
              FOR UPDATE SKIP LOCKED)
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
      FROM picked
     WHERE j.id = picked.id
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
SET enable_sort = off;

-- Pause or resume a job type or queue for every worker; running jobs finish. Resuming wakes idle workers.
CREATE FUNCTION {{schema}}.set_job_paused(p_scope text, p_name text, p_paused boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO {{schema}}.job_controls (scope, name, paused) VALUES (p_scope, p_name, p_paused)
  ON CONFLICT (scope, name) DO UPDATE SET paused = excluded.paused, updated_at = now();
  PERFORM {{schema}}.drop_empty_job_control(p_scope, p_name);
  IF NOT p_paused THEN
    PERFORM pg_notify({{channel}}, '');
  END IF;
  RETURN p_paused;
END $$;

-- Sets (or with NULL removes) a type's global concurrency cap and rate limit.
CREATE FUNCTION {{schema}}.set_job_limits(
  p_type text, p_max_running integer, p_rate_limit integer, p_rate_period_seconds double precision
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO {{schema}}.job_controls AS k (scope, name, max_running, rate_limit, rate_period_seconds)
  VALUES ('type', p_type, p_max_running, p_rate_limit, p_rate_period_seconds)
  ON CONFLICT (scope, name) DO UPDATE
     SET max_running = excluded.max_running,
         rate_limit = excluded.rate_limit,
         rate_period_seconds = excluded.rate_period_seconds,
         window_started_at = CASE WHEN k.rate_period_seconds IS DISTINCT FROM excluded.rate_period_seconds
                                  THEN NULL ELSE k.window_started_at END,
         window_count = CASE WHEN k.rate_period_seconds IS DISTINCT FROM excluded.rate_period_seconds
                             THEN 0 ELSE k.window_count END,
         updated_at = now();
  PERFORM {{schema}}.drop_empty_job_control('type', p_type);
  PERFORM pg_notify({{channel}}, '');
END $$;

CREATE FUNCTION {{schema}}.drop_empty_job_control(p_scope text, p_name text) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM {{schema}}.job_controls
   WHERE scope = p_scope AND name = p_name AND NOT paused AND max_running IS NULL AND rate_limit IS NULL
$$;

-- As in 0001, plus a NOTIFY 'cancel:<id>' when the job was running, so its worker stops it now.
CREATE OR REPLACE FUNCTION {{schema}}.cancel_job(p_job_id bigint, p_reason text DEFAULT 'cancelled by request')
RETURNS {{schema}}.job_status
LANGUAGE plpgsql AS $$
DECLARE
  v_was {{schema}}.job_status;
BEGIN
  SELECT status INTO v_was FROM {{schema}}.jobs WHERE id = p_job_id FOR UPDATE;
  IF v_was IS NULL OR v_was NOT IN ('waiting', 'pending', 'processing') THEN
    RETURN NULL;
  END IF;
  UPDATE {{schema}}.jobs
     SET status = 'cancelled', completed_at = now(), last_error = p_reason, lease_expires_at = NULL
   WHERE id = p_job_id;
  PERFORM {{schema}}.cancel_dependents(
    ARRAY[p_job_id], format('cancelled: dependency %s was cancelled', p_job_id));
  IF v_was = 'processing' THEN
    PERFORM pg_notify({{channel}}, 'cancel:' || p_job_id);
  END IF;
  RETURN 'cancelled';
END $$;

-- Progress reports of running jobs, batched and fenced like completions. Returns the ids updated.
CREATE FUNCTION {{schema}}.update_job_progress(
  p_worker_id text, p_ids bigint[], p_attempts integer[], p_percents real[], p_messages text[]
) RETURNS SETOF bigint
LANGUAGE sql VOLATILE AS $$
  UPDATE {{schema}}.jobs j
     SET progress = r.percent, progress_message = r.message, progress_at = now()
    FROM unnest(p_ids, p_attempts, p_percents, p_messages) AS r(id, attempt, percent, message)
   WHERE j.id = r.id AND j.worker_id = p_worker_id AND j.attempts = r.attempt AND j.status = 'processing'
  RETURNING j.id
$$;

CREATE OR REPLACE VIEW {{schema}}.active_jobs AS
SELECT id, type, queue, priority, attempts, max_attempts, worker_id, brief_id, payload,
       started_at, lease_expires_at, now() - started_at AS running_for, created_at,
       progress, progress_message, progress_at
  FROM {{schema}}.jobs
 WHERE status = 'processing';

-- Leadership of a maintenance role, as a lease in a table: a session advisory lock would leak behind a
-- transaction pooler. The holder renews it; anyone may take it once it has expired.
CREATE TABLE {{schema}}.leaders (
  name       text PRIMARY KEY,
  leader_id  text NOT NULL,
  elected_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);

-- Takes or renews leadership; returns true while p_leader_id holds it.
CREATE FUNCTION {{schema}}.elect_leader(p_name text, p_leader_id text, p_ttl_seconds double precision)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
  WITH won AS (
    INSERT INTO {{schema}}.leaders AS l (name, leader_id, elected_at, expires_at)
    VALUES (p_name, p_leader_id, now(), now() + make_interval(secs => p_ttl_seconds))
    ON CONFLICT (name) DO UPDATE
       SET leader_id = excluded.leader_id,
           elected_at = CASE WHEN l.leader_id = excluded.leader_id THEN l.elected_at ELSE now() END,
           expires_at = excluded.expires_at
     WHERE l.leader_id = excluded.leader_id OR l.expires_at < now()
    RETURNING 1
  )
  SELECT EXISTS (SELECT 1 FROM won)
$$;

-- Schedules that enqueue a job at each cron tick. last_tick_at is the last tick handled (enqueued or
-- skipped); advancing it is a compare-and-set, so concurrent schedulers enqueue each tick once.
CREATE TABLE {{schema}}.periodic_jobs (
  name         text PRIMARY KEY,
  cron         text NOT NULL,                      -- 5 fields, or 6 with seconds last
  type         text NOT NULL,
  queue        text NOT NULL DEFAULT 'default',
  payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
  priority     integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 3,
  catch_up     boolean NOT NULL DEFAULT true,      -- after downtime, enqueue one job for the missed ticks
  enabled      boolean NOT NULL DEFAULT true,
  source       text NOT NULL DEFAULT 'api',        -- 'code' (declared with @periodic) or 'api' (CLI, API)
  last_tick_at timestamptz NOT NULL DEFAULT now(),
  last_job_id  bigint,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT periodic_jobs_name_valid CHECK (length(btrim(name)) > 0 AND length(name) <= 128),
  CONSTRAINT periodic_jobs_type_valid CHECK (length(btrim(type)) > 0 AND length(type) <= 128),
  CONSTRAINT periodic_jobs_queue_valid CHECK (length(btrim(queue)) > 0 AND length(queue) <= 128),
  CONSTRAINT periodic_jobs_max_attempts_positive CHECK (max_attempts >= 1),
  CONSTRAINT periodic_jobs_source_valid CHECK (source IN ('code', 'api'))
);

-- Moves a schedule from p_prev_tick to p_tick and, when p_enqueue, inserts that tick's job in the same
-- statement. Returns the job id; NULL when only advanced; no row when another scheduler got there first.
CREATE FUNCTION {{schema}}.advance_periodic_job(
  p_name text, p_prev_tick timestamptz, p_tick timestamptz, p_enqueue boolean
) RETURNS TABLE (job_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_schedule {{schema}}.periodic_jobs;
  v_job_id bigint;
BEGIN
  UPDATE {{schema}}.periodic_jobs
     SET last_tick_at = p_tick
   WHERE name = p_name AND last_tick_at = p_prev_tick AND enabled
  RETURNING * INTO v_schedule;
  IF v_schedule.name IS NULL THEN
    RETURN;
  END IF;
  IF p_enqueue THEN
    INSERT INTO {{schema}}.jobs (type, queue, priority, payload, max_attempts, unique_key)
    VALUES (v_schedule.type, v_schedule.queue, v_schedule.priority, v_schedule.payload, v_schedule.max_attempts,
            format('periodic:%s:%s', p_name, to_char(p_tick AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')))
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
    RETURNING id INTO v_job_id;
    UPDATE {{schema}}.periodic_jobs SET last_job_id = coalesce(v_job_id, last_job_id) WHERE name = p_name;
  END IF;
  RETURN QUERY SELECT v_job_id;
END $$;

-- Deletes up to p_limit jobs of one final status finished more than p_older_than_seconds ago. A finished
-- parent is kept while any of its dependents is unfinished (they read its result).
CREATE FUNCTION {{schema}}.prune_finished_jobs(
  p_status {{schema}}.job_status, p_older_than_seconds double precision, p_limit integer
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_count integer;
BEGIN
  IF p_status NOT IN ('completed', 'failed', 'cancelled') THEN
    RAISE EXCEPTION 'only finished jobs can be pruned, not %', p_status USING ERRCODE = 'invalid_parameter_value';
  END IF;
  DELETE FROM {{schema}}.jobs j
   WHERE j.id IN (
           SELECT f.id FROM {{schema}}.jobs f
            WHERE f.status = p_status
              AND f.completed_at < now() - make_interval(secs => p_older_than_seconds)
              AND NOT EXISTS (
                    SELECT 1 FROM {{schema}}.job_dependencies d
                      JOIN {{schema}}.jobs c ON c.id = d.job_id
                     WHERE d.depends_on = f.id AND c.status IN ('waiting', 'pending', 'processing'))
            ORDER BY f.completed_at
            LIMIT p_limit
              FOR UPDATE SKIP LOCKED);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END $$;
