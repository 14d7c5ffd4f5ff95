-- The current supaworker schema: every object as applying the migrations (up to 0028_controls_notify_every_change) to an
-- empty database leaves it.
--
-- GENERATED, DO NOT EDIT. The numbered migrations in migrations/ are the source of truth: they stay as they
-- were released, and a later one replaces what an earlier one defined, so read a function's current body
-- here. After adding a migration, regenerate this file with
--     scripts/regenerate-schema (python -m supaworker.sql.schema_file --database-url URL)
-- and commit it with the migration; tests/migration/test_schema_file.py fails while the two disagree.
--
-- {{schema}} is the schema supaworker is installed in and {{channel}} its wake-up channel, as in the
-- migrations. Each kind of object is sorted by name. Bodies and expressions are as PostgreSQL 15 prints them.
-- Grants to Supabase's roles (anon, authenticated, service_role) are those of a server that has them; without
-- them, secure_schema() grants them nothing until they exist. Rows (the migrations ledger, owned_objects) are
-- not shown. This file is for reading: `supaworker migrate` installs the schema.

-- -- types --------------------------------------------------------------------------------------------------------

CREATE TYPE {{schema}}.job_status AS ENUM (
  'waiting',
  'pending',
  'processing',
  'completed',
  'failed',
  'cancelled'
);

-- -- tables -------------------------------------------------------------------------------------------------------

CREATE TABLE {{schema}}.briefs (
  id           uuid NOT NULL DEFAULT gen_random_uuid(),
  user_id      text NOT NULL,
  title        text NOT NULL DEFAULT ''::text,
  description  text NOT NULL DEFAULT ''::text,
  query        text NOT NULL,
  media_type   text NOT NULL,
  use_pipeline boolean NOT NULL DEFAULT false,
  pipeline     text[] NOT NULL,
  created_at   timestamp with time zone NOT NULL DEFAULT now(),

  CONSTRAINT briefs_pkey PRIMARY KEY (id),
  CONSTRAINT briefs_description_valid CHECK (length(description) <= 20000),
  CONSTRAINT briefs_media_type_valid CHECK (media_type = ANY (ARRAY['video'::text, 'image'::text, 'audio'::text, 'text'::text])),
  CONSTRAINT briefs_pipeline_valid CHECK (cardinality(pipeline) >= 1 AND array_position(pipeline, NULL::text) IS NULL),
  CONSTRAINT briefs_query_valid CHECK (length(btrim(query)) > 0 AND length(query) <= 20000),
  CONSTRAINT briefs_title_valid CHECK (length(title) <= 500),
  CONSTRAINT briefs_user_id_valid CHECK (length(btrim(user_id)) > 0 AND length(user_id) <= 255)
);
COMMENT ON TABLE {{schema}}.briefs IS 'supaworker briefs: status and result are derived in briefs_with_status';

CREATE TABLE {{schema}}.fairness_weights (
  key        text NOT NULL,
  weight     integer NOT NULL,
  updated_at timestamp with time zone NOT NULL DEFAULT now(),

  CONSTRAINT fairness_weights_pkey PRIMARY KEY (key),
  CONSTRAINT fairness_weights_weight_check CHECK (weight >= 1 AND weight <= 10000)
);
COMMENT ON TABLE {{schema}}.fairness_weights IS 'weight of a tenant (fairness_key) in the claim''s shares; a tenant not listed weighs 1';

CREATE TABLE {{schema}}.job_controls (
  scope               text NOT NULL,
  name                text NOT NULL,
  paused              boolean NOT NULL DEFAULT false,
  max_running         integer,
  rate_limit          integer,
  rate_period_seconds double precision,
  window_started_at   timestamp with time zone,
  window_count        integer NOT NULL DEFAULT 0,
  updated_at          timestamp with time zone NOT NULL DEFAULT now(),

  CONSTRAINT job_controls_pkey PRIMARY KEY (scope, name),
  CONSTRAINT job_controls_limits_on_types CHECK (scope = 'type'::text OR max_running IS NULL AND rate_limit IS NULL),
  CONSTRAINT job_controls_max_running_positive CHECK (max_running IS NULL OR max_running >= 1),
  CONSTRAINT job_controls_name_valid CHECK (length(btrim(name)) > 0 AND length(name) <= 128),
  CONSTRAINT job_controls_rate_complete CHECK ((rate_limit IS NULL) = (rate_period_seconds IS NULL)),
  CONSTRAINT job_controls_rate_positive CHECK (rate_limit IS NULL OR rate_limit >= 1 AND rate_period_seconds > 0::double precision),
  CONSTRAINT job_controls_scope_valid CHECK (scope = ANY (ARRAY['type'::text, 'queue'::text]))
);

CREATE TABLE {{schema}}.job_dependencies (
  job_id     bigint NOT NULL,
  depends_on bigint NOT NULL,

  CONSTRAINT job_dependencies_pkey PRIMARY KEY (job_id, depends_on),
  CONSTRAINT job_dependencies_depends_on_fkey FOREIGN KEY (depends_on) REFERENCES {{schema}}.jobs(id) ON DELETE CASCADE,
  CONSTRAINT job_dependencies_job_id_fkey FOREIGN KEY (job_id) REFERENCES {{schema}}.jobs(id) ON DELETE CASCADE,
  CONSTRAINT job_dependencies_not_self CHECK (job_id <> depends_on)
);

CREATE TABLE {{schema}}.job_history (
  id               bigint NOT NULL,
  type             text NOT NULL,
  queue            text NOT NULL,
  status           {{schema}}.job_status NOT NULL,
  priority         integer NOT NULL,
  payload          jsonb NOT NULL,
  result           jsonb,
  attempts         integer NOT NULL,
  max_attempts     integer NOT NULL,
  run_at           timestamp with time zone NOT NULL,
  timeout_seconds  double precision,
  last_error       text,
  errors           jsonb NOT NULL,
  worker_id        text,
  lease_expires_at timestamp with time zone,
  brief_id         uuid,
  created_at       timestamp with time zone NOT NULL,
  started_at       timestamp with time zone,
  completed_at     timestamp with time zone,
  unique_key       text,
  unique_until     timestamp with time zone,
  progress         real,
  progress_message text,
  progress_at      timestamp with time zone,
  handler_started  boolean NOT NULL,
  claim_seq        bigint,
  handed_back      integer NOT NULL,
  fairness_key     text NOT NULL
) PARTITION BY RANGE (completed_at);
COMMENT ON TABLE {{schema}}.job_history IS 'finished jobs moved out of jobs, one partition per range of completed_at (see migration 0019)';

CREATE TABLE {{schema}}.jobs (
  id               bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY,
  type             text NOT NULL,
  queue            text NOT NULL DEFAULT 'default'::text,
  status           {{schema}}.job_status NOT NULL DEFAULT 'pending'::{{schema}}.job_status,
  priority         integer NOT NULL DEFAULT 0,
  payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
  result           jsonb,
  attempts         integer NOT NULL DEFAULT 0,
  max_attempts     integer NOT NULL DEFAULT 3,
  run_at           timestamp with time zone NOT NULL DEFAULT now(),
  timeout_seconds  double precision,
  last_error       text,
  errors           jsonb NOT NULL DEFAULT '[]'::jsonb,
  worker_id        text,
  lease_expires_at timestamp with time zone,
  brief_id         uuid,
  created_at       timestamp with time zone NOT NULL DEFAULT now(),
  started_at       timestamp with time zone,
  completed_at     timestamp with time zone,
  unique_key       text,
  unique_until     timestamp with time zone,
  progress         real,
  progress_message text,
  progress_at      timestamp with time zone,
  handler_started  boolean NOT NULL DEFAULT false,
  claim_seq        bigint,
  handed_back      integer NOT NULL DEFAULT 0,
  fairness_key     text NOT NULL DEFAULT ''::text,

  CONSTRAINT jobs_pkey PRIMARY KEY (id),
  CONSTRAINT jobs_attempts_within_max CHECK (attempts >= 0 AND attempts <= max_attempts),
  CONSTRAINT jobs_errors_is_array CHECK (jsonb_typeof(errors) = 'array'::text),
  CONSTRAINT jobs_fairness_key_valid CHECK (length(fairness_key) <= 256),
  CONSTRAINT jobs_final_has_completed_at CHECK ((status <> ALL (ARRAY['completed'::{{schema}}.job_status, 'failed'::{{schema}}.job_status, 'cancelled'::{{schema}}.job_status])) OR completed_at IS NOT NULL),
  CONSTRAINT jobs_max_attempts_positive CHECK (max_attempts >= 1),
  CONSTRAINT jobs_processing_is_owned CHECK (status <> 'processing'::{{schema}}.job_status OR worker_id IS NOT NULL AND lease_expires_at IS NOT NULL AND started_at IS NOT NULL AND attempts >= 1),
  CONSTRAINT jobs_progress_range CHECK (progress IS NULL OR progress >= 0::double precision AND progress <= 100::double precision) NOT VALID,
  CONSTRAINT jobs_queue_valid CHECK (length(btrim(queue)) > 0 AND length(queue) <= 128),
  CONSTRAINT jobs_timeout_positive CHECK (timeout_seconds IS NULL OR timeout_seconds > 0::double precision),
  CONSTRAINT jobs_type_valid CHECK (length(btrim(type)) > 0 AND length(type) <= 128),
  CONSTRAINT jobs_unique_key_valid CHECK (unique_key IS NULL OR length(unique_key) >= 1 AND length(unique_key) <= 512) NOT VALID
) WITH (
  fillfactor = 70,
  autovacuum_vacuum_scale_factor = 0.02,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_analyze_scale_factor = 0.05,
  autovacuum_vacuum_cost_delay = 0
);
COMMENT ON TABLE {{schema}}.jobs IS 'supaworker job queue';
COMMENT ON COLUMN {{schema}}.jobs.handler_started IS 'processing only: the claim sent this attempt straight to a free slot (see also claim_seq)';
COMMENT ON COLUMN {{schema}}.jobs.claim_seq IS 'processing only: place in its worker''s claim sequence; begun if <= worker_starts.started_through';
COMMENT ON COLUMN {{schema}}.jobs.handed_back IS 'times a dead worker''s job was handed back uncharged, as not begun; then its start is recorded before it runs';
COMMENT ON COLUMN {{schema}}.jobs.fairness_key IS 'the tenant whose share of the workers this job uses (see claim_jobs_v2); the empty key is the default tenant';

CREATE TABLE {{schema}}.leaders (
  name       text NOT NULL,
  leader_id  text NOT NULL,
  elected_at timestamp with time zone NOT NULL DEFAULT now(),
  expires_at timestamp with time zone NOT NULL,

  CONSTRAINT leaders_pkey PRIMARY KEY (name)
);

CREATE TABLE {{schema}}.migrations (
  version    integer NOT NULL,
  name       text NOT NULL,
  applied_at timestamp with time zone NOT NULL DEFAULT now(),
  breaking   boolean NOT NULL DEFAULT false,

  CONSTRAINT migrations_pkey PRIMARY KEY (version)
);

CREATE TABLE {{schema}}.owned_objects (
  type     text NOT NULL,
  identity text NOT NULL,

  CONSTRAINT owned_objects_pkey PRIMARY KEY (type, identity)
);

CREATE TABLE {{schema}}.periodic_jobs (
  name         text NOT NULL,
  cron         text NOT NULL,
  type         text NOT NULL,
  queue        text NOT NULL DEFAULT 'default'::text,
  payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
  priority     integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 3,
  catch_up     boolean NOT NULL DEFAULT true,
  enabled      boolean NOT NULL DEFAULT true,
  source       text NOT NULL DEFAULT 'api'::text,
  last_tick_at timestamp with time zone NOT NULL DEFAULT now(),
  last_job_id  bigint,
  created_at   timestamp with time zone NOT NULL DEFAULT now(),
  updated_at   timestamp with time zone NOT NULL DEFAULT now(),

  CONSTRAINT periodic_jobs_pkey PRIMARY KEY (name),
  CONSTRAINT periodic_jobs_max_attempts_positive CHECK (max_attempts >= 1),
  CONSTRAINT periodic_jobs_name_valid CHECK (length(btrim(name)) > 0 AND length(name) <= 128),
  CONSTRAINT periodic_jobs_queue_valid CHECK (length(btrim(queue)) > 0 AND length(queue) <= 128),
  CONSTRAINT periodic_jobs_source_valid CHECK (source = ANY (ARRAY['code'::text, 'api'::text])),
  CONSTRAINT periodic_jobs_type_valid CHECK (length(btrim(type)) > 0 AND length(type) <= 128)
);

CREATE UNLOGGED TABLE {{schema}}.waiting_workers (
  worker_id text NOT NULL,
  until     timestamp with time zone NOT NULL,

  CONSTRAINT waiting_workers_pkey PRIMARY KEY (worker_id)
) WITH (fillfactor = 50);
COMMENT ON TABLE {{schema}}.waiting_workers IS 'workers blocked on an empty queue until a NOTIFY: an insert into jobs notifies only while one is here';

CREATE TABLE {{schema}}.worker_starts (
  worker_id       text NOT NULL,
  started_through bigint NOT NULL,
  updated_at      timestamp with time zone NOT NULL DEFAULT now(),

  CONSTRAINT worker_starts_pkey PRIMARY KEY (worker_id)
) WITH (fillfactor = 50);

-- -- indexes, by table --------------------------------------------------------------------------------------------

CREATE INDEX briefs_created_idx ON {{schema}}.briefs USING btree (created_at DESC, id);
CREATE INDEX briefs_user_idx ON {{schema}}.briefs USING btree (user_id, created_at DESC);

CREATE INDEX job_dependencies_depends_on_idx ON {{schema}}.job_dependencies USING btree (depends_on);

CREATE INDEX job_history_brief_idx ON ONLY {{schema}}.job_history USING btree (brief_id) WHERE brief_id IS NOT NULL;
CREATE INDEX job_history_id_idx ON ONLY {{schema}}.job_history USING btree (id);

CREATE INDEX jobs_brief_idx ON {{schema}}.jobs USING btree (brief_id) WHERE brief_id IS NOT NULL;
CREATE INDEX jobs_claim_idx ON {{schema}}.jobs USING btree (priority, run_at, id) WHERE status = 'pending'::{{schema}}.job_status;
CREATE INDEX jobs_completed_at_idx ON {{schema}}.jobs USING btree (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX jobs_fair_claim_idx ON {{schema}}.jobs USING btree (fairness_key, priority, run_at, id) WHERE status = 'pending'::{{schema}}.job_status;
CREATE INDEX jobs_finished_idx ON {{schema}}.jobs USING btree (status, completed_at) WHERE status = ANY (ARRAY['completed'::{{schema}}.job_status, 'failed'::{{schema}}.job_status, 'cancelled'::{{schema}}.job_status]);
CREATE INDEX jobs_lease_idx ON {{schema}}.jobs USING btree (lease_expires_at) WHERE status = 'processing'::{{schema}}.job_status;
CREATE INDEX jobs_queue_claim_idx ON {{schema}}.jobs USING btree (queue, priority, run_at, id) WHERE status = 'pending'::{{schema}}.job_status;
CREATE INDEX jobs_type_claim_idx ON {{schema}}.jobs USING btree (type, priority, run_at, id) WHERE status = 'pending'::{{schema}}.job_status;
CREATE UNIQUE INDEX jobs_unique_key_idx ON {{schema}}.jobs USING btree (unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX jobs_unsuccessful_id_idx ON {{schema}}.jobs USING btree (status, id) WHERE status = ANY (ARRAY['failed'::{{schema}}.job_status, 'cancelled'::{{schema}}.job_status]);
CREATE INDEX jobs_unsuccessful_idx ON {{schema}}.jobs USING btree (completed_at DESC) WHERE status = ANY (ARRAY['failed'::{{schema}}.job_status, 'cancelled'::{{schema}}.job_status]);
CREATE INDEX jobs_waiting_idx ON {{schema}}.jobs USING btree (id) WHERE status = 'waiting'::{{schema}}.job_status;

-- -- views --------------------------------------------------------------------------------------------------------

CREATE VIEW {{schema}}.active_jobs AS
 SELECT jobs.id,
    jobs.type,
    jobs.queue,
    jobs.priority,
    jobs.attempts,
    jobs.max_attempts,
    jobs.worker_id,
    jobs.brief_id,
    jobs.payload,
    jobs.started_at,
    jobs.lease_expires_at,
        CASE
            WHEN isfinite(jobs.started_at) THEN now() - jobs.started_at
            ELSE NULL::interval
        END AS running_for,
    jobs.created_at,
    jobs.progress,
    jobs.progress_message,
    jobs.progress_at
   FROM {{schema}}.jobs
  WHERE jobs.status = 'processing'::{{schema}}.job_status;

CREATE VIEW {{schema}}.briefs_with_status AS
 SELECT b.id,
    b.user_id,
    b.title,
    b.description,
    b.query,
    b.media_type,
    b.use_pipeline,
    b.pipeline,
        CASE
            WHEN s.total = 0 THEN 'pending'::text
            WHEN s.failed > 0 THEN 'failed'::text
            WHEN s.cancelled > 0 THEN 'cancelled'::text
            WHEN s.completed = s.total THEN 'completed'::text
            WHEN s.completed > 0 OR s.started > 0 THEN 'processing'::text
            ELSE 'pending'::text
        END AS status,
        CASE
            WHEN s.total > 0 AND s.completed = s.total THEN ( SELECT j.result
               FROM {{schema}}.jobs_with_history j
              WHERE j.brief_id = b.id AND NOT (EXISTS ( SELECT 1
                       FROM {{schema}}.job_dependencies d
                         JOIN {{schema}}.jobs c ON c.id = d.job_id
                      WHERE d.depends_on = j.id AND c.brief_id = b.id))
              ORDER BY j.id DESC
             LIMIT 1)
            ELSE NULL::jsonb
        END AS result,
        CASE
            WHEN s.failed > 0 THEN stop.type
            ELSE NULL::text
        END AS failed_step,
        CASE
            WHEN s.failed > 0 THEN stop.id
            ELSE NULL::bigint
        END AS failed_job_id,
        CASE
            WHEN s.failed > 0 OR s.cancelled > 0 THEN stop.last_error
            ELSE NULL::text
        END AS error,
    s.total AS steps_total,
    s.completed AS steps_completed,
    b.created_at,
    s.started_at,
    GREATEST(b.created_at, s.updated_at) AS updated_at,
        CASE
            WHEN s.total > 0 AND (s.completed + s.failed + s.cancelled) = s.total OR s.failed > 0 OR s.cancelled > 0 THEN s.finished_at
            ELSE NULL::timestamp with time zone
        END AS completed_at
   FROM {{schema}}.briefs b
     CROSS JOIN LATERAL ( SELECT count(*) AS total,
            count(*) FILTER (WHERE j.status = 'completed'::{{schema}}.job_status) AS completed,
            count(*) FILTER (WHERE j.status = 'failed'::{{schema}}.job_status) AS failed,
            count(*) FILTER (WHERE j.status = 'cancelled'::{{schema}}.job_status) AS cancelled,
            count(*) FILTER (WHERE j.status = 'processing'::{{schema}}.job_status OR j.attempts > 0) AS started,
            min(j.started_at) AS started_at,
            max(GREATEST(j.created_at, j.started_at, j.completed_at)) AS updated_at,
            max(j.completed_at) AS finished_at
           FROM {{schema}}.jobs_with_history j
          WHERE j.brief_id = b.id) s
     LEFT JOIN LATERAL ( SELECT j.id,
            j.type,
            j.last_error
           FROM {{schema}}.jobs_with_history j
          WHERE j.brief_id = b.id AND (j.status = ANY (ARRAY['failed'::{{schema}}.job_status, 'cancelled'::{{schema}}.job_status]))
          ORDER BY (j.status = 'failed'::{{schema}}.job_status) DESC, j.id
         LIMIT 1) stop ON true;

CREATE VIEW {{schema}}.job_stats AS
 SELECT jobs.type,
    jobs.status,
    count(*) AS count,
    round(avg(EXTRACT(epoch FROM jobs.completed_at - jobs.started_at)), 3) AS avg_duration_seconds,
    round(percentile_cont(0.5::double precision) WITHIN GROUP (ORDER BY (EXTRACT(epoch FROM jobs.completed_at - jobs.started_at)::double precision))::numeric, 3) AS p50_duration_seconds,
    round(percentile_cont(0.95::double precision) WITHIN GROUP (ORDER BY (EXTRACT(epoch FROM jobs.completed_at - jobs.started_at)::double precision))::numeric, 3) AS p95_duration_seconds,
    min(jobs.created_at) AS oldest_created_at,
    max(jobs.created_at) AS newest_created_at
   FROM {{schema}}.jobs
  GROUP BY jobs.type, jobs.status;

CREATE VIEW {{schema}}.jobs_with_history AS
 SELECT jobs.id,
    jobs.type,
    jobs.queue,
    jobs.status,
    jobs.priority,
    jobs.payload,
    jobs.result,
    jobs.attempts,
    jobs.max_attempts,
    jobs.run_at,
    jobs.timeout_seconds,
    jobs.last_error,
    jobs.errors,
    jobs.worker_id,
    jobs.lease_expires_at,
    jobs.brief_id,
    jobs.created_at,
    jobs.started_at,
    jobs.completed_at,
    jobs.unique_key,
    jobs.unique_until,
    jobs.progress,
    jobs.progress_message,
    jobs.progress_at,
    jobs.handler_started,
    jobs.claim_seq,
    jobs.handed_back,
    jobs.fairness_key
   FROM {{schema}}.jobs
UNION ALL
 SELECT job_history.id,
    job_history.type,
    job_history.queue,
    job_history.status,
    job_history.priority,
    job_history.payload,
    job_history.result,
    job_history.attempts,
    job_history.max_attempts,
    job_history.run_at,
    job_history.timeout_seconds,
    job_history.last_error,
    job_history.errors,
    job_history.worker_id,
    job_history.lease_expires_at,
    job_history.brief_id,
    job_history.created_at,
    job_history.started_at,
    job_history.completed_at,
    job_history.unique_key,
    job_history.unique_until,
    job_history.progress,
    job_history.progress_message,
    job_history.progress_at,
    job_history.handler_started,
    job_history.claim_seq,
    job_history.handed_back,
    job_history.fairness_key
   FROM {{schema}}.job_history;

CREATE VIEW {{schema}}.pending_jobs_queue AS
 SELECT jobs.id,
    jobs.type,
    jobs.queue,
    jobs.priority,
    jobs.attempts,
    jobs.max_attempts,
    jobs.run_at,
    jobs.brief_id,
    jobs.payload,
    jobs.created_at,
        CASE
            WHEN isfinite(jobs.created_at) THEN now() - jobs.created_at
            ELSE NULL::interval
        END AS age,
    jobs.run_at <= now() AS runnable
   FROM {{schema}}.jobs
  WHERE jobs.status = 'pending'::{{schema}}.job_status
  ORDER BY jobs.priority, jobs.run_at, jobs.id;

-- -- functions ----------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION {{schema}}.advance_periodic_job(p_name text, p_prev_tick timestamp with time zone, p_tick timestamp with time zone, p_enqueue boolean)
 RETURNS TABLE(job_id bigint)
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.archive_finished_jobs(p_older_than_seconds double precision, p_limit integer, p_partition_seconds double precision DEFAULT 86400)
 RETURNS integer
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
DECLARE
  v_ids bigint[];
  v_at timestamptz;
  v_made integer := 0;
  v_count integer;
BEGIN
  SELECT array_agg(f.id ORDER BY f.id) INTO v_ids
    FROM (SELECT f.id FROM {{schema}}.jobs f
           WHERE f.status IN ('completed', 'failed', 'cancelled')
             AND f.completed_at < now() - make_interval(secs => p_older_than_seconds)
             -- '-infinity' (plain SQL) has no partition: it stays in jobs rather than stop every move.
             AND isfinite(f.completed_at)
             AND NOT EXISTS (
                   SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs c ON c.id = d.job_id
                    WHERE d.depends_on = f.id AND c.status IN ('waiting', 'pending', 'processing'))
             AND (f.brief_id IS NULL OR NOT EXISTS (
                   SELECT 1 FROM {{schema}}.jobs s
                    WHERE s.brief_id = f.brief_id AND s.status IN ('waiting', 'pending', 'processing')))
           ORDER BY f.completed_at
           LIMIT p_limit
             FOR UPDATE SKIP LOCKED) f;
  IF v_ids IS NULL THEN
    RETURN 0;
  END IF;
  -- A partition for the earliest job of the batch that has none, until every one has one (one per range).
  LOOP
    SELECT min(j.completed_at) INTO v_at
      FROM {{schema}}.jobs j
     WHERE j.id = ANY (v_ids)
       AND NOT EXISTS (SELECT 1 FROM {{schema}}.history_ranges() r
                        WHERE r.starts_at <= j.completed_at AND j.completed_at < r.ends_at);
    EXIT WHEN v_at IS NULL;
    v_made := v_made + 1;
    IF v_made > cardinality(v_ids) THEN  -- each round covers at least one job: never, but never a spin either
      RAISE EXCEPTION 'no partition of job_history takes the job finished at %', v_at;
    END IF;
    PERFORM {{schema}}.history_partition(v_at, p_partition_seconds);
  END LOOP;
  WITH moved AS (DELETE FROM {{schema}}.jobs j WHERE j.id = ANY (v_ids) RETURNING j.*)
  INSERT INTO {{schema}}.job_history SELECT * FROM moved;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.brief_document(p_brief_id uuid, p_steps boolean DEFAULT true)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT to_jsonb(b) || CASE WHEN p_steps THEN jsonb_build_object('steps', coalesce(
           (SELECT jsonb_agg(to_jsonb(j) || jsonb_build_object('depends_on', coalesce(
                      (SELECT jsonb_agg(d.depends_on ORDER BY d.depends_on) FROM {{schema}}.job_dependencies d
                        WHERE d.job_id = j.id), '[]'::jsonb)) ORDER BY j.id)
              FROM {{schema}}.jobs_with_history j
             WHERE j.brief_id = b.id), '[]'::jsonb))
         ELSE '{}'::jsonb END
    FROM {{schema}}.briefs_with_status b
   WHERE b.id = p_brief_id
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.brief_step_columns()
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT ARRAY['id', 'brief_id', 'type', 'status', 'progress', 'progress_message', 'progress_at', 'result',
               'last_error', 'attempts', 'max_attempts', 'created_at', 'started_at', 'completed_at']
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.brief_steps(media_type text, use_pipeline boolean)
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE WHEN use_pipeline THEN (SELECT p.steps FROM {{schema}}.pipelines() p
                                       WHERE p.media_type = brief_steps.media_type)
              ELSE ARRAY['analysis'] END
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.cancel_brief(p_brief_id uuid, p_reason text DEFAULT 'brief cancelled by request'::text)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_ids bigint[];
  v_id bigint;
  v_count integer;
BEGIN
  PERFORM {{schema}}.check_text('reason', p_reason, 1000);
  SELECT array_agg(j.id ORDER BY j.id) INTO v_ids FROM (
    SELECT id FROM {{schema}}.jobs
     WHERE brief_id = p_brief_id AND status IN ('waiting', 'pending', 'processing')
     ORDER BY id FOR UPDATE) j;
  IF v_ids IS NULL THEN
    RETURN 0;
  END IF;
  FOR v_id IN
    SELECT c.id FROM {{schema}}.jobs c
     WHERE c.id = ANY (v_ids)
       AND NOT EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d WHERE d.job_id = c.id AND d.depends_on = ANY (v_ids))
     ORDER BY c.id
  LOOP
    PERFORM {{schema}}.cancel_job(v_id, p_reason);
  END LOOP;
  SELECT count(*) INTO v_count FROM {{schema}}.jobs WHERE id = ANY (v_ids) AND status = 'cancelled';
  RETURN v_count;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.cancel_dependents(p_parent_ids bigint[], p_reason text)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_count integer;
BEGIN
  WITH RECURSIVE descendants(id) AS (
    SELECT d.job_id FROM {{schema}}.job_dependencies d WHERE d.depends_on = ANY (p_parent_ids)
    UNION
    SELECT d.job_id FROM {{schema}}.job_dependencies d JOIN descendants x ON d.depends_on = x.id
  )
  UPDATE {{schema}}.jobs c
     SET status = 'cancelled', completed_at = now(), last_error = p_reason
   WHERE c.id IN (SELECT id FROM descendants) AND c.status IN ('waiting', 'pending');
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.cancel_job(p_job_id bigint, p_reason text DEFAULT 'cancelled by request'::text)
 RETURNS {{schema}}.job_status
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_was {{schema}}.job_status;
BEGIN
  PERFORM {{schema}}.check_text('reason', p_reason, 1000);
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
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.check_briefs_exist(p_ids uuid[])
 RETURNS void
 LANGUAGE plpgsql
 STABLE
AS $function$
DECLARE
  v_missing uuid;
BEGIN
  SELECT x INTO v_missing FROM unnest(p_ids) x
   WHERE x IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {{schema}}.briefs b WHERE b.id = x)
   ORDER BY x LIMIT 1;
  IF v_missing IS NOT NULL THEN
    PERFORM {{schema}}.raise_invalid(format('brief_id %s is no brief''s id; create the brief first', v_missing),
                                     'brief_id');
  END IF;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.check_job(type text, payload jsonb, priority bigint, run_at timestamp with time zone, delay double precision, max_attempts bigint, timeout double precision, queue text, unique_key text, unique_for double precision, depends_on bigint[])
 RETURNS void
 LANGUAGE plpgsql
 STABLE
AS $function$
DECLARE
  v_ref bigint;
BEGIN
  PERFORM {{schema}}.check_text('type', check_job.type, 128);
  PERFORM {{schema}}.check_text('queue', check_job.queue, 128);
  IF check_job.payload IS NOT NULL THEN
    PERFORM {{schema}}.check_json_depth('payload', check_job.payload, 64);
  END IF;
  IF check_job.priority IS NULL OR check_job.priority NOT BETWEEN -2147483648 AND 2147483647 THEN
    PERFORM {{schema}}.raise_invalid('priority must be a 32-bit integer (lower runs first)', 'priority');
  END IF;
  IF check_job.max_attempts IS NULL OR check_job.max_attempts NOT BETWEEN 1 AND 2147483647 THEN
    PERFORM {{schema}}.raise_invalid('max_attempts must be an integer >= 1', 'max_attempts');
  END IF;
  IF check_job.timeout IS NOT NULL THEN
    PERFORM {{schema}}.check_seconds('timeout', check_job.timeout, 2592000.0, true);
  END IF;
  IF check_job.run_at IS NOT NULL AND check_job.delay IS NOT NULL THEN
    PERFORM {{schema}}.raise_invalid('give run_at or delay, not both', 'delay');
  END IF;
  IF check_job.run_at IS NOT NULL
     AND NOT (check_job.run_at >= '1970-01-01T00:00:00+00:00' AND check_job.run_at < '9999-01-01T00:00:00+00:00') THEN
    PERFORM {{schema}}.raise_invalid('run_at must be from 1970-01-01T00:00:00+00:00 to before 9999-01-01T00:00:00+00:00, not ' || check_job.run_at,
      'run_at');
  END IF;
  IF check_job.delay IS NOT NULL THEN
    PERFORM {{schema}}.check_seconds('delay', check_job.delay, 3153600000.0, false);
  END IF;
  IF check_job.unique_key IS NOT NULL THEN
    PERFORM {{schema}}.check_text('unique_key', check_job.unique_key, 512, true);
    IF check_job.unique_key = '' THEN
      PERFORM {{schema}}.raise_invalid('unique_key must be a non-empty string of at most 512 characters', 'unique_key');
    END IF;
  END IF;
  IF check_job.unique_for IS NOT NULL THEN
    IF check_job.unique_key IS NULL THEN
      PERFORM {{schema}}.raise_invalid('unique_for needs a unique_key', 'unique_for');
    END IF;
    PERFORM {{schema}}.check_seconds('unique_for', check_job.unique_for, 3153600000.0, true);
  END IF;
  -- dependencies.check_depends_on
  FOREACH v_ref IN ARRAY coalesce(check_job.depends_on, '{}') LOOP
    IF v_ref IS NULL OR v_ref < 1 THEN
      PERFORM {{schema}}.raise_invalid('depends_on entries must be job ids, not ' || coalesce(v_ref::text, 'None'),
                                       'depends_on');
    END IF;
  END LOOP;
  IF (SELECT count(DISTINCT r) FROM unnest(check_job.depends_on) r) > 1000 THEN
    PERFORM {{schema}}.raise_invalid(format('a job may depend on at most %s jobs, not %s', 1000,
                                            (SELECT count(DISTINCT r) FROM unnest(check_job.depends_on) r)), 'depends_on');
  END IF;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.check_job_dependencies()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_bad record;
  v_cycle bigint;
  v_unblocked integer;
BEGIN
  -- Children first (their status is rewritten below), then parents, each in id order.
  PERFORM 1 FROM {{schema}}.jobs c WHERE c.id IN (SELECT n.job_id FROM new_deps n) ORDER BY c.id FOR UPDATE;
  PERFORM 1 FROM {{schema}}.jobs p
   WHERE p.id IN (SELECT n.depends_on FROM new_deps n) AND p.id NOT IN (SELECT n.job_id FROM new_deps n)
   ORDER BY p.id FOR SHARE;

  SELECT c.id, c.status INTO v_bad
    FROM {{schema}}.jobs c
   WHERE c.id IN (SELECT n.job_id FROM new_deps n) AND c.status NOT IN ('waiting', 'pending')
   ORDER BY c.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'job % is %: dependencies can only be added to a job that has not started', v_bad.id, v_bad.status
      USING ERRCODE = 'check_violation';
  END IF;

  SELECT n.job_id, p.id AS parent_id, p.status INTO v_bad
    FROM new_deps n JOIN {{schema}}.jobs p ON p.id = n.depends_on
   WHERE p.status IN ('failed', 'cancelled')
   ORDER BY n.job_id, p.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'job % cannot depend on job %, which is %', v_bad.job_id, v_bad.parent_id, v_bad.status
      USING ERRCODE = 'check_violation';
  END IF;

  WITH RECURSIVE up(child, id) AS (
    SELECT n.job_id, n.depends_on FROM new_deps n
    UNION
    SELECT u.child, d.depends_on FROM up u JOIN {{schema}}.job_dependencies d ON d.job_id = u.id
  )
  SELECT u.child INTO v_cycle FROM up u WHERE u.id = u.child LIMIT 1;
  IF v_cycle IS NOT NULL THEN
    RAISE EXCEPTION 'dependency cycle: job % would depend on itself', v_cycle USING ERRCODE = 'check_violation';
  END IF;

  UPDATE {{schema}}.jobs c
     SET status = 'waiting'
   WHERE c.id IN (SELECT n.job_id FROM new_deps n) AND c.status = 'pending'
     AND EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs p ON p.id = d.depends_on
                  WHERE d.job_id = c.id AND p.status <> 'completed');
  UPDATE {{schema}}.jobs c
     SET status = 'pending', run_at = greatest(c.run_at, now())
   WHERE c.id IN (SELECT n.job_id FROM new_deps n) AND c.status = 'waiting'
     AND NOT EXISTS (SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs p ON p.id = d.depends_on
                      WHERE d.job_id = c.id AND p.status <> 'completed');
  GET DIAGNOSTICS v_unblocked = ROW_COUNT;
  IF v_unblocked > 0 THEN
    PERFORM pg_notify({{channel}}, '');
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.check_json_depth(p_field text, p_value jsonb, p_max_depth integer DEFAULT 64)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
BEGIN
  -- Cheap first: p_max_depth + 1 nested containers take at least 2 * (p_max_depth + 1) characters (all empty
  -- arrays), so a shorter document cannot be too deep.
  IF length(p_value::text) >= 2 * (p_max_depth + 1)
     AND jsonb_path_exists(p_value, format('strict $.**{%s to last} ? (@.type() == "object" || @.type() == "array")',
                                           p_max_depth)::jsonpath) THEN
    PERFORM {{schema}}.raise_invalid(format('%s is nested more than %s levels deep', p_field, p_max_depth), p_field);
  END IF;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.check_parents(p_label text, p_ids bigint[])
 RETURNS {{schema}}.job_status
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_ids bigint[];
  v_statuses {{schema}}.job_status[];
  v_unknown text;
  v_dead text;
BEGIN
  SELECT array_agg(l.id), array_agg(l.status) INTO v_ids, v_statuses FROM (
    SELECT j.id, j.status FROM {{schema}}.jobs j WHERE j.id = ANY (p_ids) ORDER BY j.id FOR SHARE) l;
  SELECT string_agg(p::text, ', ' ORDER BY o) INTO v_unknown
    FROM unnest(p_ids) WITH ORDINALITY AS x(p, o) WHERE p <> ALL (coalesce(v_ids, '{}'));
  IF v_unknown IS NOT NULL THEN
    PERFORM {{schema}}.raise_invalid(format(
      '%s depends on unknown job id(s) %s (not in the queue: never made, pruned, or finished and moved to history)',
      p_label, v_unknown), 'depends_on');
  END IF;
  SELECT string_agg(format('job %s is %s', x.p, s.status), ', ' ORDER BY x.o) INTO v_dead
    FROM unnest(p_ids) WITH ORDINALITY AS x(p, o)
    JOIN unnest(v_ids, v_statuses) AS s(id, status) ON s.id = x.p
   WHERE s.status IN ('failed', 'cancelled');
  IF v_dead IS NOT NULL THEN
    PERFORM {{schema}}.raise_invalid(format('%s cannot depend on a job that will never complete: %s', p_label, v_dead),
                                     'depends_on');
  END IF;
  RETURN CASE WHEN 'completed' = ALL (coalesce(v_statuses, '{}')) THEN 'pending' ELSE 'waiting' END;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.check_seconds(p_field text, p_value double precision, p_maximum double precision, p_positive boolean)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
BEGIN
  IF p_value IS NULL OR p_value IN ('NaN', 'Infinity', '-Infinity')
     OR (p_positive AND p_value <= 0) OR (NOT p_positive AND p_value < 0) THEN
    PERFORM {{schema}}.raise_invalid(
      format('%s must be a finite number of seconds %s, not %s', p_field,
             CASE WHEN p_positive THEN '> 0' ELSE '>= 0' END, coalesce(p_value::text, 'None')), p_field);
  END IF;
  IF p_value > p_maximum THEN
    PERFORM {{schema}}.raise_invalid(
      format('%s must be at most %s seconds, not %s', p_field, {{schema}}.format_g(p_maximum),
             {{schema}}.format_g(p_value)), p_field);
  END IF;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.check_text(p_field text, p_value text, p_max_length integer, p_allow_blank boolean DEFAULT false)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
BEGIN
  IF p_value IS NULL THEN
    PERFORM {{schema}}.raise_invalid(p_field || ' must be a string, not NoneType', p_field);
  END IF;
  IF NOT p_allow_blank AND {{schema}}.is_blank(p_value) THEN
    PERFORM {{schema}}.raise_invalid(p_field || ' must be a non-empty string', p_field);
  END IF;
  IF length(p_value) > p_max_length THEN
    PERFORM {{schema}}.raise_invalid(
      format('%s must be at most %s characters, not %s', p_field, p_max_length, length(p_value)), p_field);
  END IF;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.claim_job(p_worker_id text, p_types text[] DEFAULT NULL::text[])
 RETURNS SETOF {{schema}}.jobs
 LANGUAGE sql
AS $function$
  SELECT * FROM {{schema}}.claim_jobs(p_worker_id, p_types, 1)
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.claim_jobs(p_worker_id text, p_types text[] DEFAULT NULL::text[], p_limit integer DEFAULT 1, p_lease_seconds double precision DEFAULT 30, p_queues text[] DEFAULT NULL::text[])
 RETURNS SETOF {{schema}}.jobs
 LANGUAGE sql
 SET jit TO 'off'
AS $function$
  SELECT * FROM {{schema}}.claim_jobs_v2(p_worker_id, p_types, p_limit, p_lease_seconds, p_queues, p_limit, 0)
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.claim_jobs_v2(p_worker_id text, p_types text[] DEFAULT NULL::text[], p_limit integer DEFAULT 1, p_lease_seconds double precision DEFAULT 30, p_queues text[] DEFAULT NULL::text[], p_start integer DEFAULT NULL::integer, p_seq_base bigint DEFAULT 0)
 RETURNS SETOF {{schema}}.jobs
 LANGUAGE plpgsql
 SET enable_sort TO 'off'
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
  v_ids bigint[];
  v_paused_types text[] := '{}';
  v_paused_queues text[] := '{}';
  v_limited text[] := '{}';
  v_allowed integer[] := '{}';
  v_any_free boolean := true;
  v_controls boolean;
  v_first text;
  v_last text;
  v_shared boolean;
  v_turn_name text;
  v_turn text[];
  v_turn_key text;
  v_turn_left bigint;
  v_quantum bigint;  -- a turn is weight x quantum: 10,000 x a tenth of the largest batch is past an integer
  v_rated boolean := false;
  v_from_priority integer;
  v_from_run_at timestamptz;
  v_from_id bigint;
  v_queue_priority integer;
  v_queue_run_at timestamptz;
  v_queue_id bigint;
BEGIN
  v_controls := EXISTS (
    SELECT 1 FROM {{schema}}.job_controls k
     WHERE (k.scope = 'type' AND (p_types IS NULL OR k.name = ANY (p_types)))
        OR (k.scope = 'queue' AND (p_queues IS NULL OR k.name = ANY (p_queues))));

  -- Tenants with jobs queued: two probes tell one from several (the common case stays the plain path).
  SELECT c.fairness_key INTO v_first FROM {{schema}}.jobs c
   WHERE c.status = 'pending' ORDER BY c.fairness_key LIMIT 1;
  IF FOUND THEN
    SELECT c.fairness_key INTO v_last FROM {{schema}}.jobs c
     WHERE c.status = 'pending' ORDER BY c.fairness_key DESC LIMIT 1;
  END IF;
  v_shared := v_first IS DISTINCT FROM v_last;

  IF v_controls THEN
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
                    OR k.window_started_at + make_interval(secs => least(k.rate_period_seconds, 3153600000)) <= now()
                  THEN k.rate_limit ELSE k.rate_limit - k.window_count END)) ORDER BY k.name), '{}'),
           coalesce(bool_or(k.rate_limit IS NOT NULL), false)
      INTO v_limited, v_allowed, v_rated
      FROM {{schema}}.job_controls k
     WHERE k.scope = 'type' AND NOT k.paused AND (k.max_running IS NOT NULL OR k.rate_limit IS NOT NULL)
       AND (p_types IS NULL OR k.name = ANY (p_types));

    -- When every type asked for is limited or paused, the unlimited part has nothing to find: skip it
    -- rather than walk every pending job of those types (a drain with a limit set ran at a quarter speed).
    v_any_free := p_types IS NULL
      OR EXISTS (SELECT 1 FROM unnest(p_types) t WHERE t <> ALL (v_limited) AND t <> ALL (v_paused_types));
  END IF;

  -- Where the jobs the claim's scans may take begin in claim order: none comes before the first job of any of
  -- its free types (named, neither limited nor paused; read unlocked from jobs_type_claim_idx), nor before the
  -- first job of any of its queues (jobs_queue_claim_idx). The scans of jobs_claim_idx and jobs_fair_claim_idx
  -- start at the later of the two, so the backlog ahead of it (of types and queues not named, limited or
  -- paused) is skipped by the index rather than walked row by row, and they still lock only the rows they
  -- take. Without named types or queues everything may be taken (the lowest key); a claim of one type without
  -- controls reads jobs_type_claim_idx alone. (The type is bounded on both sides rather than compared with =,
  -- and the order names it: with = the planner drops the type from the order and, from statistics that saw one
  -- type, prefers walking jobs_claim_idx, which is the walk this avoids. Likewise the queue.)
  v_from_priority := -2147483648;
  v_from_run_at := '-infinity';
  v_from_id := -9223372036854775808;
  IF p_types IS NOT NULL
     AND NOT (NOT v_shared AND NOT v_controls AND cardinality(p_types) = 1 AND p_queues IS NULL) THEN
    SELECT h.priority, h.run_at, h.id INTO v_from_priority, v_from_run_at, v_from_id
      FROM (SELECT DISTINCT t.type FROM unnest(p_types) AS t(type)
             WHERE t.type <> ALL (v_limited) AND t.type <> ALL (v_paused_types)) AS a
     CROSS JOIN LATERAL (
           SELECT c.priority, c.run_at, c.id FROM {{schema}}.jobs c
            WHERE c.status = 'pending'
              AND c.type >= a.type AND c.type <= a.type
              AND c.run_at <= now()
            ORDER BY c.type, c.priority, c.run_at, c.id
            LIMIT 1) h
     ORDER BY h.priority, h.run_at, h.id
     LIMIT 1;
  END IF;
  IF p_queues IS NOT NULL AND v_from_id IS NOT NULL THEN
    SELECT h.priority, h.run_at, h.id INTO v_queue_priority, v_queue_run_at, v_queue_id
      FROM (SELECT DISTINCT q.queue FROM unnest(p_queues) AS q(queue)) AS a
     CROSS JOIN LATERAL (
           SELECT c.priority, c.run_at, c.id FROM {{schema}}.jobs c
            WHERE c.status = 'pending'
              AND c.queue >= a.queue AND c.queue <= a.queue
              AND c.run_at <= now()
            ORDER BY c.queue, c.priority, c.run_at, c.id
            LIMIT 1) h
     ORDER BY h.priority, h.run_at, h.id
     LIMIT 1;
    IF v_queue_id IS NULL
       OR (v_queue_priority, v_queue_run_at, v_queue_id) > (v_from_priority, v_from_run_at, v_from_id) THEN
      v_from_priority := v_queue_priority;
      v_from_run_at := v_queue_run_at;
      v_from_id := v_queue_id;
    END IF;
  END IF;

  IF NOT v_shared AND NOT v_controls AND p_types IS NULL AND p_queues IS NULL THEN
    v_ids := ARRAY(
      SELECT c.id FROM {{schema}}.jobs c
       WHERE c.status = 'pending'
         AND c.run_at <= now()
         AND (p_types IS NULL OR c.type = ANY (p_types))
         AND (p_queues IS NULL OR c.queue = ANY (p_queues))
       ORDER BY c.priority, c.run_at, c.id
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED);
  ELSIF NOT v_shared AND NOT v_controls AND cardinality(p_types) = 1 AND p_queues IS NULL THEN
    -- One type: its jobs in claim order are a range of jobs_type_claim_idx.
    v_ids := ARRAY(
      SELECT c.id FROM {{schema}}.jobs c
       WHERE c.status = 'pending'
         AND c.type >= p_types[1] AND c.type <= p_types[1]
         AND c.run_at <= now()
       ORDER BY c.type, c.priority, c.run_at, c.id
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED);
  ELSIF NOT v_shared AND NOT v_controls THEN
    -- Named types, queues or both: the scan starts where the first job the claim may take can be (above).
    v_ids := ARRAY(
      SELECT c.id FROM {{schema}}.jobs c
       WHERE c.status = 'pending'
         AND (c.priority, c.run_at, c.id) >= (v_from_priority, v_from_run_at, v_from_id)
         AND c.run_at <= now()
         AND (p_types IS NULL OR c.type = ANY (p_types))
         AND (p_queues IS NULL OR c.queue = ANY (p_queues))
         AND v_from_id IS NOT NULL
       ORDER BY c.priority, c.run_at, c.id
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED);
  ELSIF NOT v_shared AND p_types IS NOT NULL THEN
    -- Under limits or pauses: the free types from where they begin (above), each limited type within its limit.
    v_ids := ARRAY(
      WITH free AS (
        SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
         WHERE c.status = 'pending'
           AND (c.priority, c.run_at, c.id) >= (v_from_priority, v_from_run_at, v_from_id)
           AND c.run_at <= now()
           AND c.type = ANY (p_types)
           AND (p_queues IS NULL OR c.queue = ANY (p_queues))
           AND c.type <> ALL (v_limited) AND c.type <> ALL (v_paused_types) AND c.queue <> ALL (v_paused_queues)
           AND v_from_id IS NOT NULL
         ORDER BY c.priority, c.run_at, c.id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
      ), limited AS (
        SELECT l.id, l.priority, l.run_at
          FROM unnest(v_limited, v_allowed) AS a(type, allowed)
         CROSS JOIN LATERAL (
               SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
                WHERE c.status = 'pending'
                  AND c.type >= a.type AND c.type <= a.type
                  AND c.run_at <= now()
                  AND (p_queues IS NULL OR c.queue = ANY (p_queues))
                  AND c.queue <> ALL (v_paused_queues)
                ORDER BY c.type, c.priority, c.run_at, c.id
                LIMIT a.allowed
                  FOR UPDATE SKIP LOCKED) l
         WHERE a.allowed > 0
      )
      SELECT u.id FROM (SELECT * FROM free UNION ALL SELECT * FROM limited) u
       ORDER BY u.priority, u.run_at, u.id
       LIMIT p_limit);
  ELSIF NOT v_shared THEN
    v_ids := ARRAY(
      WITH free AS (
        SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
         WHERE c.status = 'pending'
           AND (c.priority, c.run_at, c.id) >= (v_from_priority, v_from_run_at, v_from_id)
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
  ELSE
    -- The shares: turns round the tenants with jobs queued, in key order, from where this session's last
    -- shared claim left off (kept in a setting of the session, by schema). A turn is the tenant's weight times a
    -- tenth of the batch, so a claim reads about ten keys and takes from about ten tenants however many wait;
    -- the turn the batch ends in goes on in the next claim. Sessions go round each on their own: a new one starts
    -- at a tenant drawn at random in proportion to weight, so that sessions claiming once each (a pooler's, a
    -- short-lived one's) do not all start at the first; one whose tenant has gone goes on at the next.
    v_turn_name := 'supaworker.fair_turn_' || to_regnamespace((parse_ident('{{schema}}'))[1])::oid;
    v_turn := nullif(current_setting(v_turn_name, true), '')::text[];  -- {what is left of the turn, tenant}
    v_quantum := ceil(p_limit / 10.0)::bigint;
    IF v_turn IS NOT NULL THEN
      SELECT c.fairness_key INTO v_turn_key FROM {{schema}}.jobs c
       WHERE c.status = 'pending' AND c.fairness_key >= v_turn[2] ORDER BY c.fairness_key LIMIT 1;
      IF v_turn_key = v_turn[2] AND v_turn[1]::bigint > 0 THEN
        v_turn_left := v_turn[1]::bigint;
      ELSIF v_turn_key = v_turn[2] THEN
        SELECT c.fairness_key INTO v_turn_key FROM {{schema}}.jobs c
         WHERE c.status = 'pending' AND c.fairness_key > v_turn[2] ORDER BY c.fairness_key LIMIT 1;
      END IF;
    ELSE
      -- The draw walks the keys once per session (the first 1,000 where there are more).
      WITH RECURSIVE k(key, n) AS (
        SELECT v_first, 1
        UNION ALL
        SELECT (SELECT c.fairness_key FROM {{schema}}.jobs c
                 WHERE c.status = 'pending' AND c.fairness_key > k.key ORDER BY c.fairness_key LIMIT 1), k.n + 1
          FROM k WHERE k.key IS NOT NULL AND k.n < 1000
      )
      SELECT k.key INTO v_turn_key
        FROM k LEFT JOIN {{schema}}.fairness_weights w ON w.key = k.key
       WHERE k.key IS NOT NULL
       ORDER BY -ln(1.0 - random()) / coalesce(w.weight, 1)
       LIMIT 1;
    END IF;
    v_turn_key := coalesce(v_turn_key, v_first);

    WITH RECURSIVE walk(n, key, quota, total) AS (
      SELECT 1, v_turn_key, t.quota, t.quota
        FROM (SELECT coalesce(v_turn_left, v_quantum * coalesce(
                (SELECT w.weight FROM {{schema}}.fairness_weights w WHERE w.key = v_turn_key), 1)) AS quota) t
      UNION ALL
      SELECT k.n + 1, nk.key, nk.quota, k.total + nk.quota
        FROM walk k
       CROSS JOIN LATERAL (
             SELECT nx.key, v_quantum * coalesce(
                      (SELECT w.weight FROM {{schema}}.fairness_weights w WHERE w.key = nx.key), 1) AS quota
               FROM (SELECT coalesce(
                       (SELECT c.fairness_key FROM {{schema}}.jobs c
                         WHERE c.status = 'pending' AND c.fairness_key > k.key ORDER BY c.fairness_key LIMIT 1),
                       v_first) AS key) nx) nk
       WHERE k.total < p_limit AND k.n < 1000
    ), turn AS (
      -- A tenant met twice in one claim (few tenants) takes its turns in one go.
      SELECT k.key, min(k.n) AS n, sum(least(k.quota, p_limit - (k.total - k.quota)))::bigint AS quota
        FROM walk k GROUP BY k.key
    )
    SELECT ARRAY(
             SELECT p.id FROM turn t
              CROSS JOIN LATERAL (
                    SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
                     WHERE c.status = 'pending'
                       -- The tenant's jobs from where the claim's may begin: a range of jobs_fair_claim_idx whose
                       -- start the index finds (with fairness_key = t.key it would walk the tenant's jobs up to it).
                       AND (c.fairness_key, c.priority, c.run_at, c.id) >= (t.key, v_from_priority, v_from_run_at, v_from_id)
                       AND c.fairness_key <= t.key
                       AND c.run_at <= now()
                       AND (p_types IS NULL OR c.type = ANY (p_types))
                       AND (p_queues IS NULL OR c.queue = ANY (p_queues))
                       AND c.type <> ALL (v_limited) AND c.type <> ALL (v_paused_types)
                       AND c.queue <> ALL (v_paused_queues)
                     ORDER BY c.fairness_key, c.priority, c.run_at, c.id
                     LIMIT t.quota
                       FOR UPDATE SKIP LOCKED) p
              WHERE v_any_free
              ORDER BY t.n, p.priority, p.run_at, p.id),
           (SELECT ARRAY[(k.total - p_limit)::text, k.key] FROM walk k ORDER BY k.n DESC LIMIT 1)
      INTO v_ids, v_turn;
    PERFORM set_config(v_turn_name, v_turn::text, false);
    -- What the shares left: in plain claim order (work-conserving), then the limited types within their limits.
    IF cardinality(v_ids) < p_limit AND v_any_free THEN
      v_ids := v_ids || ARRAY(
        SELECT c.id FROM {{schema}}.jobs c
         WHERE c.status = 'pending'
           AND (c.priority, c.run_at, c.id) >= (v_from_priority, v_from_run_at, v_from_id)
           AND c.run_at <= now()
           AND (p_types IS NULL OR c.type = ANY (p_types))
           AND (p_queues IS NULL OR c.queue = ANY (p_queues))
           AND c.type <> ALL (v_limited) AND c.type <> ALL (v_paused_types) AND c.queue <> ALL (v_paused_queues)
           AND c.id <> ALL (v_ids)
         ORDER BY c.priority, c.run_at, c.id
         LIMIT p_limit - cardinality(v_ids)
           FOR UPDATE SKIP LOCKED);
    END IF;
    IF cardinality(v_ids) < p_limit AND cardinality(v_limited) > 0 THEN
      v_ids := v_ids || ARRAY(
        SELECT l.id
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
         ORDER BY l.priority, l.run_at, l.id
         LIMIT p_limit - cardinality(v_ids));
    END IF;
  END IF;

  IF v_rated AND cardinality(v_ids) > 0 THEN
    -- Rate windows: a claim after the window ran out opens a new one (BullMQ's fixed-window limiter).
    UPDATE {{schema}}.job_controls k
       SET window_started_at = CASE WHEN k.window_started_at IS NULL
                                      OR k.window_started_at + make_interval(secs => least(k.rate_period_seconds, 3153600000)) <= now()
                                    THEN now() ELSE k.window_started_at END,
           window_count = CASE WHEN k.window_started_at IS NULL
                                 OR k.window_started_at + make_interval(secs => least(k.rate_period_seconds, 3153600000)) <= now()
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
         -- A pending job whose attempts plain SQL set to its max_attempts: this run is one more allowed
         -- (as retry_job() does), not a check violation that failed the claim of every worker.
         max_attempts = greatest(j.max_attempts, j.attempts + 1),
         -- The clock, not now(): the claim may share a transaction begun before a parent's completion
         -- committed (a worker's pipeline), and a job must not show as started before its parent completed.
         started_at = clock_timestamp(),
         lease_expires_at = now() + make_interval(secs => p_lease_seconds),
         handler_started = o.n <= coalesce(p_start, p_limit),
         claim_seq = p_seq_base + o.n
    FROM unnest(v_ids) WITH ORDINALITY AS o(id, n)
   WHERE j.id = o.id
  RETURNING j.*;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.complete_job(p_job_id bigint, p_worker_id text, p_result jsonb DEFAULT NULL::jsonb, p_attempt integer DEFAULT NULL::integer)
 RETURNS boolean
 LANGUAGE sql
AS $function$
  SELECT EXISTS (
    SELECT 1 FROM {{schema}}.complete_jobs(
      p_worker_id, ARRAY[p_job_id],
      ARRAY[coalesce(p_attempt, (SELECT attempts FROM {{schema}}.jobs WHERE id = p_job_id))],
      ARRAY[p_result]))
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.complete_jobs(p_worker_id text, p_ids bigint[], p_attempts integer[], p_results jsonb[])
 RETURNS SETOF bigint
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
 SET jit TO 'off'
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.create_brief_with_job(user_id text DEFAULT NULL::text, title text DEFAULT ''::text, description text DEFAULT ''::text, query text DEFAULT NULL::text, media_type text DEFAULT NULL::text, use_pipeline boolean DEFAULT false, steps text[] DEFAULT NULL::text[], options jsonb DEFAULT NULL::jsonb, priority bigint DEFAULT 0, max_attempts bigint DEFAULT 3, queue text DEFAULT 'default'::text, fairness_key text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_plan text[];
  v_step text;
  v_msg text;
  v_field text;
  v_brief_id uuid;
  v_payload jsonb;
  v_ids bigint[];
  v_media_types text[] := ARRAY(SELECT p.media_type FROM {{schema}}.pipelines() p);
BEGIN
  -- briefs.validate_brief
  PERFORM {{schema}}.check_text('user_id', create_brief_with_job.user_id, 255);
  PERFORM {{schema}}.check_text('title', create_brief_with_job.title, 500, true);
  PERFORM {{schema}}.check_text('description', create_brief_with_job.description, 20000, true);
  PERFORM {{schema}}.check_text('query', create_brief_with_job.query, 20000);
  IF create_brief_with_job.media_type IS NULL OR NOT create_brief_with_job.media_type = ANY (v_media_types) THEN
    PERFORM {{schema}}.raise_invalid(format('media_type must be one of %s, not %s', array_to_string(v_media_types, ', '),
                                            {{schema}}.repr(create_brief_with_job.media_type)), 'media_type');
  END IF;
  IF create_brief_with_job.use_pipeline IS NULL THEN
    PERFORM {{schema}}.raise_invalid('use_pipeline must be true or false, not None', 'use_pipeline');
  END IF;
  IF create_brief_with_job.steps IS NULL THEN
    v_plan := {{schema}}.brief_steps(create_brief_with_job.media_type, create_brief_with_job.use_pipeline);
  ELSE
    -- pipelines.check_steps
    IF coalesce(cardinality(create_brief_with_job.steps), 0) NOT BETWEEN 1 AND 50 THEN
      PERFORM {{schema}}.raise_invalid('steps must hold between 1 and 50 job types', 'steps');
    END IF;
    FOREACH v_step IN ARRAY create_brief_with_job.steps LOOP
      IF v_step IS NULL OR {{schema}}.is_blank(v_step) OR length(v_step) > 128 THEN
        PERFORM {{schema}}.raise_invalid('each step must be a non-empty job type of at most 128 characters, not ' || {{schema}}.repr(v_step), 'steps');
      END IF;
    END LOOP;
    v_plan := create_brief_with_job.steps;
  END IF;
  IF create_brief_with_job.fairness_key IS NOT NULL THEN
    PERFORM {{schema}}.check_text('fairness_key', create_brief_with_job.fairness_key, 256, true);
  END IF;
  IF create_brief_with_job.options IS NOT NULL THEN
    IF jsonb_typeof(create_brief_with_job.options) <> 'object' THEN
      PERFORM {{schema}}.raise_invalid('options must be a mapping of extra payload fields', 'options');
    END IF;
    PERFORM {{schema}}.check_json_depth('options', create_brief_with_job.options, 64);
  END IF;
  BEGIN
    PERFORM {{schema}}.check_job(v_plan[1], '{}', create_brief_with_job.priority, NULL, NULL,
                                 create_brief_with_job.max_attempts, NULL, create_brief_with_job.queue, NULL, NULL, NULL);
  EXCEPTION WHEN invalid_parameter_value THEN
    -- The job's field (priority, max_attempts, queue) is the brief's argument of the same name.
    GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_field = COLUMN_NAME;
    PERFORM {{schema}}.raise_invalid(v_msg, nullif(v_field, ''));
  END;

  INSERT INTO {{schema}}.briefs AS b (user_id, title, description, query, media_type, use_pipeline, pipeline)
  VALUES (create_brief_with_job.user_id, create_brief_with_job.title, create_brief_with_job.description,
          create_brief_with_job.query, create_brief_with_job.media_type,
          create_brief_with_job.use_pipeline OR create_brief_with_job.steps IS NOT NULL, v_plan)
  RETURNING b.id INTO v_brief_id;
  -- briefs.step_payload: the application's options, then the brief's own fields.
  v_payload := coalesce(create_brief_with_job.options, '{}') || jsonb_build_object(
    'brief_id', v_brief_id, 'title', create_brief_with_job.title, 'description', create_brief_with_job.description,
    'query', create_brief_with_job.query, 'media_type', create_brief_with_job.media_type);
  WITH inserted AS (
    INSERT INTO {{schema}}.jobs AS j (type, queue, status, priority, payload, max_attempts, brief_id, fairness_key)
    SELECT s.step, create_brief_with_job.queue,
           CASE WHEN s.n = 1 THEN 'pending' ELSE 'waiting' END::{{schema}}.job_status,
           create_brief_with_job.priority, v_payload, create_brief_with_job.max_attempts, v_brief_id,
           coalesce(create_brief_with_job.fairness_key, create_brief_with_job.user_id)
      FROM unnest(v_plan) WITH ORDINALITY AS s(step, n)
     ORDER BY s.n
    RETURNING j.id
  )
  SELECT array_agg(id ORDER BY id) INTO v_ids FROM inserted;
  IF cardinality(v_ids) > 1 THEN
    INSERT INTO {{schema}}.job_dependencies (job_id, depends_on)
    SELECT v_ids[n], v_ids[n - 1] FROM generate_series(2, cardinality(v_ids)) n;
  END IF;
  RETURN jsonb_build_object('brief', {{schema}}.brief_document(v_brief_id),
                            'job', (SELECT {{schema}}.job_document(j) FROM {{schema}}.jobs j WHERE j.id = v_ids[1]));
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.create_job(type text, payload jsonb DEFAULT '{}'::jsonb, priority bigint DEFAULT 0, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, delay double precision DEFAULT NULL::double precision, max_attempts bigint DEFAULT 3, timeout double precision DEFAULT NULL::double precision, brief_id uuid DEFAULT NULL::uuid, queue text DEFAULT 'default'::text, unique_key text DEFAULT NULL::text, unique_for double precision DEFAULT NULL::double precision, depends_on bigint[] DEFAULT NULL::bigint[], fairness_key text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_parents bigint[];
  v_status {{schema}}.job_status := 'pending';
  v_run_at timestamptz;
  v_row {{schema}}.jobs;
  v_unique record;
BEGIN
  PERFORM {{schema}}.check_job(create_job.type, create_job.payload, create_job.priority, create_job.run_at,
                               create_job.delay, create_job.max_attempts, create_job.timeout, create_job.queue,
                               create_job.unique_key, create_job.unique_for, create_job.depends_on);
  IF create_job.fairness_key IS NOT NULL THEN
    PERFORM {{schema}}.check_text('fairness_key', create_job.fairness_key, 256, true);
  END IF;
  -- The common call (no brief, no parents) skips the statements it does not need: each costs a plan run.
  IF create_job.brief_id IS NOT NULL THEN
    PERFORM {{schema}}.check_briefs_exist(ARRAY[create_job.brief_id]);
  END IF;
  IF cardinality(create_job.depends_on) > 0 THEN
    -- Distinct, in the order given.
    SELECT array_agg(r ORDER BY o) INTO v_parents
      FROM (SELECT r, min(o) AS o FROM unnest(create_job.depends_on) WITH ORDINALITY AS x(r, o) GROUP BY r) d;
  END IF;
  v_run_at := coalesce(create_job.run_at, now() + make_interval(secs => coalesce(create_job.delay, 0)));
  IF create_job.unique_key IS NOT NULL THEN
    IF v_parents IS NOT NULL THEN
      PERFORM {{schema}}.raise_invalid('unique_key cannot be combined with depends_on (yet): give one or the other',
                                       'unique_key');
    END IF;
    SELECT u.duplicate, u.job INTO v_unique
      FROM {{schema}}.insert_unique_job_v2(create_job.type, create_job.queue, create_job.priority::integer,
                                           coalesce(create_job.payload, '{}'), create_job.max_attempts::integer,
                                           v_run_at, create_job.timeout, create_job.brief_id, create_job.unique_key,
                                           create_job.unique_for, coalesce(create_job.fairness_key, '')) u;
    RETURN {{schema}}.job_document(v_unique.job) || jsonb_build_object('duplicate', v_unique.duplicate);
  END IF;
  IF v_parents IS NOT NULL THEN
    v_status := {{schema}}.check_parents('the job', v_parents);
  END IF;
  INSERT INTO {{schema}}.jobs AS j (type, queue, status, priority, payload, max_attempts, run_at, timeout_seconds,
                                    brief_id, fairness_key)
  VALUES (create_job.type, create_job.queue, v_status, create_job.priority, coalesce(create_job.payload, '{}'),
          create_job.max_attempts, v_run_at, create_job.timeout, create_job.brief_id,
          coalesce(create_job.fairness_key, ''))
  RETURNING j.* INTO v_row;
  IF v_parents IS NULL THEN
    RETURN to_jsonb(v_row) || '{"depends_on": [], "duplicate": false}'::jsonb;
  END IF;
  -- The trigger job_dependencies_check re-checks under its locks and settles waiting or pending.
  INSERT INTO {{schema}}.job_dependencies (job_id, depends_on) SELECT v_row.id, p FROM unnest(v_parents) p;
  SELECT * INTO v_row FROM {{schema}}.jobs j WHERE j.id = v_row.id;
  RETURN {{schema}}.job_document(v_row) || jsonb_build_object('duplicate', false);
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.create_jobs(jobs jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_n integer;
  v_item jsonb;
  v_i integer;
  v_name text;
  v_msg text;
  v_field text;
  v_ref jsonb;
  v_key text;
  v_keys text[] := '{}';
  v_type text[] := '{}';
  v_queue text[] := '{}';
  v_payload jsonb[] := '{}';
  v_priority bigint[] := '{}';
  v_max_attempts bigint[] := '{}';
  v_run_at timestamptz[] := '{}';
  v_timeout double precision[] := '{}';
  v_brief uuid[] := '{}';
  v_fairness text[] := '{}';
  v_status {{schema}}.job_status[] := '{}';
  v_refs jsonb[] := '{}';       -- each item's depends_on: distinct, in the order given
  v_ids bigint[];
  v_placed boolean[];
  v_progress boolean;
  v_left integer;
  v_path integer[];
  v_at integer;
  v_next integer;
  v_parents bigint[];
  v_this_run_at timestamptz;
  v_delay double precision;
  v_depends bigint[];
  v_unique_key text;
  v_unique_for double precision;
  v_brief_text text;
  v_brief_id uuid;
  v_child bigint[] := '{}';
  v_parent bigint[] := '{}';
  v_j integer;
BEGIN
  IF jsonb_typeof(create_jobs.jobs) IS DISTINCT FROM 'array' THEN
    PERFORM {{schema}}.raise_invalid('jobs must be a list of jobs', 'jobs');
  END IF;
  v_n := jsonb_array_length(create_jobs.jobs);
  FOR v_i IN 0 .. v_n - 1 LOOP
    v_item := create_jobs.jobs -> v_i;
    IF jsonb_typeof(v_item) <> 'object' OR NOT v_item ? 'type' THEN
      PERFORM {{schema}}.raise_invalid(format('job #%s: each job must be a mapping with a ''type''', v_i));
    END IF;
    SELECT k INTO v_name FROM jsonb_object_keys(v_item) k
     WHERE k NOT IN ('type', 'payload', 'priority', 'run_at', 'delay', 'max_attempts', 'timeout', 'brief_id',
                     'queue', 'unique_key', 'unique_for', 'depends_on', 'key', 'fairness_key')
     ORDER BY k COLLATE "C" LIMIT 1;
    IF v_name IS NOT NULL THEN
      PERFORM {{schema}}.raise_invalid(format('job #%s: unknown field %s', v_i, {{schema}}.repr(v_name)));
    END IF;
    BEGIN
      -- client._bulk_row: the key, then depends_on (ids and keys), then create_job's checks.
      v_key := NULL;
      IF v_item ? 'key' AND jsonb_typeof(v_item -> 'key') <> 'null' THEN
        IF jsonb_typeof(v_item -> 'key') <> 'string' OR {{schema}}.is_blank(v_item ->> 'key')
           OR length(v_item ->> 'key') > 128 THEN
          PERFORM {{schema}}.raise_invalid('key must be a non-empty string of at most 128 characters');
        END IF;
        v_key := v_item ->> 'key';
      END IF;
      v_depends := '{}';
      IF jsonb_typeof(v_item -> 'depends_on') IS DISTINCT FROM 'null' AND v_item ? 'depends_on' THEN
        IF jsonb_typeof(v_item -> 'depends_on') <> 'array' THEN
          PERFORM {{schema}}.raise_invalid('depends_on must be a list of job ids');
        END IF;
        FOR v_ref IN SELECT x.e FROM jsonb_array_elements(v_item -> 'depends_on') AS x(e) LOOP
          IF jsonb_typeof(v_ref) = 'number' AND v_ref::text ~ '^-?[0-9]+$' THEN
            IF v_ref::text::numeric < 1 OR v_ref::text::numeric >= 9223372036854775808 THEN
              PERFORM {{schema}}.raise_invalid('depends_on entries must be job ids, not ' || v_ref::text);
            END IF;
          ELSIF jsonb_typeof(v_ref) = 'string' THEN
            IF {{schema}}.is_blank(v_ref #>> '{}') OR length(v_ref #>> '{}') > 128 THEN
              PERFORM {{schema}}.raise_invalid('depends_on keys must be non-empty strings of at most 128 characters');
            END IF;
          ELSE
            PERFORM {{schema}}.raise_invalid('depends_on entries must be job ids, not '
              || CASE jsonb_typeof(v_ref) WHEN 'null' THEN 'None' WHEN 'boolean' THEN initcap(v_ref::text)
                                          ELSE v_ref::text END);
          END IF;
        END LOOP;
      END IF;
      SELECT coalesce(jsonb_agg(e ORDER BY o), '[]') INTO v_ref
        FROM (SELECT e, min(o) AS o FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(v_item -> 'depends_on') = 'array' THEN v_item -> 'depends_on' END)
                WITH ORDINALITY AS x(e, o) GROUP BY e) d;
      IF jsonb_array_length(v_ref) > 1000 THEN
        PERFORM {{schema}}.raise_invalid(format('a job may depend on at most %s jobs, not %s', 1000,
                                                jsonb_array_length(v_ref)));
      END IF;
      v_type := v_type || {{schema}}.job_field_text(v_item, 'type', NULL);
      v_queue := v_queue || {{schema}}.job_field_text(v_item, 'queue', 'default');
      PERFORM {{schema}}.check_text('type', v_type[v_i + 1], 128);
      PERFORM {{schema}}.check_text('queue', v_queue[v_i + 1], 128);
      v_payload := v_payload || coalesce(nullif(v_item -> 'payload', 'null'), '{}');
      v_priority := v_priority || {{schema}}.job_field_integer(
        v_item, 'priority', 0, 'priority must be a 32-bit integer (lower runs first)');
      v_max_attempts := v_max_attempts || {{schema}}.job_field_integer(
        v_item, 'max_attempts', 3, 'max_attempts must be an integer >= 1');
      v_this_run_at := NULL;
      IF jsonb_typeof(v_item -> 'run_at') IS DISTINCT FROM 'null' AND v_item ? 'run_at' THEN
        -- ISO 8601 with a time zone, as validation.check_run_at wants a timezone-aware time.
        IF jsonb_typeof(v_item -> 'run_at') <> 'string'
           OR (v_item ->> 'run_at') !~ '(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN
          PERFORM {{schema}}.raise_invalid('run_at must be a timezone-aware datetime', 'run_at');
        END IF;
        BEGIN
          v_this_run_at := (v_item ->> 'run_at')::timestamptz;
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
          PERFORM {{schema}}.raise_invalid('run_at must be a timezone-aware datetime', 'run_at');
        END;
      END IF;
      v_delay := {{schema}}.job_field_seconds(v_item, 'delay', false);
      v_timeout := v_timeout || {{schema}}.job_field_seconds(v_item, 'timeout', true);
      v_unique_key := {{schema}}.job_field_text(v_item, 'unique_key', NULL);
      v_unique_for := {{schema}}.job_field_seconds(v_item, 'unique_for', true);
      PERFORM {{schema}}.check_job(v_type[v_i + 1], v_payload[v_i + 1], v_priority[v_i + 1], v_this_run_at, v_delay,
                                   v_max_attempts[v_i + 1], v_timeout[v_i + 1], v_queue[v_i + 1], v_unique_key,
                                   v_unique_for, NULL);
      v_fairness := v_fairness || coalesce({{schema}}.job_field_text(v_item, 'fairness_key', NULL), '');
      PERFORM {{schema}}.check_text('fairness_key', v_fairness[v_i + 1], 256, true);
      v_brief_id := NULL;
      v_brief_text := {{schema}}.job_field_text(v_item, 'brief_id', NULL);
      IF v_brief_text IS NOT NULL THEN
        BEGIN
          v_brief_id := v_brief_text::uuid;
        EXCEPTION WHEN invalid_text_representation THEN
          PERFORM {{schema}}.raise_invalid(format('brief_id must be a UUID, not %s', {{schema}}.repr(v_brief_text)),
                                           'brief_id');
        END;
      END IF;
    EXCEPTION WHEN invalid_parameter_value THEN
      GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT;
      PERFORM {{schema}}.raise_invalid(format('job #%s: %s', v_i, v_msg));
    END;
    IF coalesce(v_delay, 0) <> 0 THEN
      PERFORM {{schema}}.raise_invalid(format('job #%s: bulk jobs take run_at, not delay', v_i));
    END IF;
    IF v_unique_key IS NOT NULL THEN
      PERFORM {{schema}}.raise_invalid(
        format('job #%s: bulk jobs take no unique_key; use create_job for unique jobs', v_i));
    END IF;
    IF v_key IS NOT NULL AND v_key = ANY (v_keys) THEN
      PERFORM {{schema}}.raise_invalid(format('job #%s: key %s is used by more than one job', v_i, {{schema}}.repr(v_key)));
    END IF;
    v_keys := v_keys || v_key;
    v_run_at := v_run_at || v_this_run_at;
    v_brief := v_brief || v_brief_id;
    v_refs := v_refs || v_ref;
  END LOOP;

  PERFORM {{schema}}.check_briefs_exist(v_brief);

  -- Batch references by key must name a job of the batch.
  FOR v_i IN 1 .. v_n LOOP
    FOR v_ref IN SELECT e FROM jsonb_array_elements(v_refs[v_i]) AS x(e) WHERE jsonb_typeof(e) = 'string' LOOP
      IF NOT (v_ref #>> '{}') = ANY (array_remove(v_keys, NULL)) THEN
        PERFORM {{schema}}.raise_invalid(format('job #%s depends on %s, which is no job''s key in this batch',
                                                v_i - 1, {{schema}}.repr(v_ref #>> '{}')));
      END IF;
    END LOOP;
  END LOOP;

  -- Insertion order: each job after the batch jobs it depends on (a job with none left is placed first).
  v_ids := array_fill(NULL::bigint, ARRAY[v_n]);
  v_placed := array_fill(false, ARRAY[v_n]);
  v_left := v_n;
  WHILE v_left > 0 LOOP
    v_progress := false;
    FOR v_i IN 1 .. v_n LOOP
      CONTINUE WHEN v_placed[v_i];
      IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(v_refs[v_i]) WITH ORDINALITY AS r(k, o)
                      WHERE jsonb_typeof(v_refs[v_i] -> (o::integer - 1)) = 'string'
                        AND NOT v_placed[array_position(v_keys, k)]) THEN
        v_placed[v_i] := true;
        v_left := v_left - 1;
        v_progress := true;
        -- A placeholder order number; the ids are drawn below in this order.
        v_ids[v_i] := v_n - v_left;
      END IF;
    END LOOP;
    IF NOT v_progress THEN
      -- Every unplaced job waits on another unplaced one: follow first parents to a repeat.
      v_at := array_position(v_placed, false);
      v_path := ARRAY[v_at];
      LOOP
        SELECT array_position(v_keys, r.k) INTO v_next
          FROM jsonb_array_elements_text(v_refs[v_at]) WITH ORDINALITY AS r(k, o)
         WHERE jsonb_typeof(v_refs[v_at] -> (o::integer - 1)) = 'string'
           AND NOT v_placed[array_position(v_keys, r.k)]
         ORDER BY o LIMIT 1;
        IF v_next = ANY (v_path) THEN
          v_path := v_path[array_position(v_path, v_next):] || v_next;
          EXIT;
        END IF;
        v_path := v_path || v_next;
        v_at := v_next;
      END LOOP;
      SELECT string_agg(CASE WHEN v_keys[p] IS NOT NULL THEN {{schema}}.repr(v_keys[p]) ELSE '#' || (p - 1) END,
                        ' -> ' ORDER BY o)
        INTO v_msg FROM unnest(v_path) WITH ORDINALITY AS x(p, o);
      PERFORM {{schema}}.raise_invalid('dependency cycle: ' || v_msg);
    END IF;
  END LOOP;

  -- Existing parents: locked, and each job's starting status from them.
  FOR v_i IN 1 .. v_n LOOP
    SELECT array_agg(e::bigint ORDER BY o) INTO v_parents
      FROM jsonb_array_elements_text(v_refs[v_i]) WITH ORDINALITY AS r(e, o)
     WHERE jsonb_typeof(v_refs[v_i] -> (o::integer - 1)) = 'number';
    v_status := v_status || CASE
      WHEN v_parents IS NOT NULL THEN {{schema}}.check_parents(format('job #%s', v_i - 1), v_parents)
      ELSE 'pending'::{{schema}}.job_status END;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_refs[v_i]) AS x(e) WHERE jsonb_typeof(e) = 'string') THEN
      v_status[v_i] := 'waiting';
    END IF;
  END LOOP;

  -- v_ids holds each job's place in the order; the rows go in in that order, so ids follow it.
  WITH ordered AS (
    SELECT x.i, x.place FROM unnest(v_ids) WITH ORDINALITY AS x(place, i)
  ), inserted AS (
    INSERT INTO {{schema}}.jobs AS j (id, type, queue, status, priority, payload, max_attempts, run_at,
                                      timeout_seconds, brief_id, fairness_key)
    SELECT nextval(pg_get_serial_sequence('{{schema}}.jobs', 'id')), v_type[o.i], v_queue[o.i], v_status[o.i],
           v_priority[o.i], v_payload[o.i], v_max_attempts[o.i], coalesce(v_run_at[o.i], now()), v_timeout[o.i],
           v_brief[o.i], v_fairness[o.i]
      FROM (SELECT * FROM ordered ORDER BY place) o
    RETURNING j.id
  )
  SELECT array_agg(id ORDER BY id) INTO v_parents FROM inserted;
  -- Ids were drawn in place order, so the k-th smallest id belongs to the job placed k-th.
  v_ids := ARRAY(SELECT v_parents[x.place::integer] FROM unnest(v_ids) WITH ORDINALITY AS x(place, i) ORDER BY x.i);

  FOR v_i IN 1 .. v_n LOOP
    FOR v_ref IN SELECT x.e FROM jsonb_array_elements(v_refs[v_i]) AS x(e) LOOP
      v_child := v_child || v_ids[v_i];
      v_parent := v_parent || CASE WHEN jsonb_typeof(v_ref) = 'string'
                                   THEN v_ids[array_position(v_keys, v_ref #>> '{}')]
                                   ELSE (v_ref::text)::bigint END;
    END LOOP;
  END LOOP;
  IF cardinality(v_child) > 0 THEN
    INSERT INTO {{schema}}.job_dependencies (job_id, depends_on) SELECT * FROM unnest(v_child, v_parent);
  END IF;
  RETURN to_jsonb(coalesce(v_ids, '{}'));
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.drop_empty_job_control(p_scope text, p_name text)
 RETURNS void
 LANGUAGE sql
AS $function$
  DELETE FROM {{schema}}.job_controls
   WHERE scope = p_scope AND name = p_name AND NOT paused AND max_running IS NULL AND rate_limit IS NULL
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.drop_history_partitions(p_older_than_seconds double precision)
 RETURNS SETOF text
 LANGUAGE plpgsql
 SET lock_timeout TO '5s'
AS $function$
DECLARE
  v_partition record;
  v_name text;
BEGIN
  FOR v_partition IN SELECT r.name, r.ends_at FROM {{schema}}.history_ranges() r ORDER BY r.starts_at LOOP
    CONTINUE WHEN v_partition.ends_at > now() - make_interval(secs => p_older_than_seconds);
    DELETE FROM {{schema}}.owned_objects o
     USING pg_identify_object('pg_class'::regclass, v_partition.name, 0) i
     WHERE o.type = i.type AND o.identity = i.identity;
    v_name := v_partition.name::text;  -- its name, while it still has one
    EXECUTE format('DROP TABLE %s', v_partition.name);
    RETURN NEXT v_name;
  END LOOP;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.elect_leader(p_name text, p_leader_id text, p_ttl_seconds double precision)
 RETURNS boolean
 LANGUAGE sql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.expose_briefs(p_enabled boolean DEFAULT true)
 RETURNS boolean
 LANGUAGE plpgsql
 SET client_min_messages TO 'warning'
AS $function$
DECLARE
  v_schema text := (parse_ident('{{schema}}'))[1];
  v_step_columns text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest({{schema}}.brief_step_columns()) c);
  v_current boolean;
BEGIN
  IF p_enabled AND current_setting('server_version_num')::integer < 150000 THEN
    RAISE EXCEPTION 'exposing briefs to end users needs PostgreSQL 15 or later (security_invoker views)'
      USING ERRCODE = 'feature_not_supported';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    IF p_enabled THEN
      RAISE EXCEPTION 'no role "authenticated": end-user reads are for Supabase (or PostgREST with its roles)'
        USING ERRCODE = 'undefined_object';
    END IF;
    RETURN false;
  END IF;

  -- Exposed as this release exposes them: both policies there, and both views with the columns they show.
  v_current := p_enabled
    AND EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = '{{schema}}.briefs'::regclass AND polname = 'briefs_owner_select')
    AND EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = '{{schema}}.jobs'::regclass AND polname = 'jobs_brief_owner_select')
    AND to_regclass(format('%I.user_briefs', v_schema)) IS NOT NULL
    AND to_regclass(format('%I.user_brief_steps', v_schema)) IS NOT NULL
    AND ARRAY(SELECT a.attname::text FROM pg_attribute a
               WHERE a.attrelid = to_regclass(format('%I.user_brief_steps', v_schema)) AND a.attnum > 0
               ORDER BY a.attnum) = {{schema}}.brief_step_columns()::text[]
    AND ARRAY(SELECT a.attname::text FROM pg_attribute a
               WHERE a.attrelid = to_regclass(format('%I.user_briefs', v_schema)) AND a.attnum > 0
               ORDER BY a.attnum)
      = ARRAY(SELECT a.attname::text FROM pg_attribute a
               WHERE a.attrelid = '{{schema}}.briefs_with_status'::regclass AND a.attnum > 0 AND NOT a.attisdropped
               ORDER BY a.attnum);
  IF NOT v_current THEN
    EXECUTE format('DROP POLICY IF EXISTS briefs_owner_select ON %I.briefs', v_schema);
    EXECUTE format('DROP POLICY IF EXISTS jobs_brief_owner_select ON %I.jobs', v_schema);
    EXECUTE format('DROP VIEW IF EXISTS %I.user_brief_steps', v_schema);
    EXECUTE format('DROP VIEW IF EXISTS %I.user_briefs', v_schema);
  END IF;
  EXECUTE format('REVOKE ALL ON %I.briefs FROM authenticated', v_schema);
  EXECUTE format('REVOKE ALL ON %I.jobs FROM authenticated', v_schema);
  IF NOT p_enabled THEN
    -- USAGE on the schema is left to secure_schema(), which takes it back from authenticated.
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM authenticated', v_schema);
    RETURN false;
  END IF;

  IF NOT v_current THEN
    EXECUTE format('CREATE POLICY briefs_owner_select ON %I.briefs FOR SELECT TO authenticated '
                   'USING (user_id = %I.request_user_id())', v_schema, v_schema);
    -- The subquery on briefs runs under the reader's own policy on briefs: only their briefs' jobs.
    EXECUTE format('CREATE POLICY jobs_brief_owner_select ON %I.jobs FOR SELECT TO authenticated '
                   'USING (brief_id IN (SELECT b.id FROM %I.briefs b))', v_schema, v_schema);
    -- The derived status reads all of a brief's jobs (payloads included), so this view runs as its owner, as
    -- briefs_with_status does, and applies the policies' rule itself: only the reader's own briefs.
    EXECUTE format('CREATE VIEW %I.user_briefs AS SELECT w.* FROM %I.briefs_with_status w '
                   'WHERE w.user_id = %I.request_user_id()', v_schema, v_schema, v_schema);
    EXECUTE format('CREATE VIEW %I.user_brief_steps WITH (security_invoker = true) AS SELECT %s FROM %I.jobs '
                   'WHERE brief_id IS NOT NULL', v_schema, v_step_columns, v_schema);
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO authenticated', v_schema);
  EXECUTE format('GRANT SELECT ON %I.briefs TO authenticated', v_schema);
  EXECUTE format('GRANT SELECT (%s) ON %I.jobs TO authenticated', v_step_columns, v_schema);
  EXECUTE format('GRANT SELECT ON %I.user_briefs, %I.user_brief_steps TO authenticated', v_schema, v_schema);
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
    EXECUTE format('GRANT SELECT ON %I.user_briefs, %I.user_brief_steps TO service_role', v_schema, v_schema);
  END IF;
  EXECUTE format('GRANT EXECUTE ON FUNCTION %I.request_user_id() TO authenticated', v_schema);
  RETURN true;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.fail_job(p_job_id bigint, p_worker_id text, p_error text, p_attempt integer DEFAULT NULL::integer, p_retry_base_seconds double precision DEFAULT 5, p_retry_cap_seconds double precision DEFAULT 3600, p_retryable boolean DEFAULT true)
 RETURNS {{schema}}.job_status
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.forget_dead_job_starts(p_worker_ids text[])
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  DELETE FROM {{schema}}.worker_starts w
   WHERE w.worker_id = ANY (p_worker_ids)
     AND NOT EXISTS (SELECT 1 FROM {{schema}}.jobs j WHERE j.worker_id = w.worker_id AND j.status = 'processing')
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.forget_job_starts(p_worker_id text)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  DELETE FROM {{schema}}.worker_starts WHERE worker_id = p_worker_id
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.format_g(p_value double precision)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE
           WHEN p_value IS NULL THEN 'None'
           WHEN p_value = 0 THEN '0'
           WHEN p_value = 'NaN' THEN 'nan'
           WHEN p_value = 'Infinity' THEN 'inf'
           WHEN p_value = '-Infinity' THEN '-inf'
           WHEN abs(p_value) >= 1e-4 AND abs(p_value) < 999999.5 THEN
             regexp_replace(regexp_replace(
               round(p_value::numeric, greatest(0, 5 - floor(log(abs(p_value::numeric)))::integer))::text,
               '(\.[0-9]*?)0+$', '\1'), '\.$', '')
           ELSE regexp_replace(btrim(to_char(p_value, '9.99999EEEE')), '\.?0+e', 'e') END
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.get_brief(brief_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT {{schema}}.brief_document(get_brief.brief_id)
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.get_job(job_id bigint)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT coalesce(
    (SELECT {{schema}}.job_document(j) FROM {{schema}}.jobs j WHERE j.id = get_job.job_id),
    -- A moved job's links went with it (job_dependencies holds those of jobs in the queue's table).
    (SELECT to_jsonb(h) || jsonb_build_object('depends_on', '[]'::jsonb)
       FROM {{schema}}.job_history h WHERE h.id = get_job.job_id LIMIT 1))
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.heartbeat_jobs(p_worker_id text, p_ids bigint[], p_lease_seconds double precision DEFAULT 30)
 RETURNS SETOF bigint
 LANGUAGE sql
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.history_partition(p_at timestamp with time zone, p_seconds double precision)
 RETURNS regclass
 LANGUAGE plpgsql
 SET lock_timeout TO '5s'
AS $function$
DECLARE
  v_from timestamptz := to_timestamp(floor(extract(epoch FROM p_at) / p_seconds) * p_seconds);
  v_to timestamptz := v_from + make_interval(secs => p_seconds);
  v_schema text := (parse_ident('{{schema}}'))[1];
  v_name text;
  v_table regclass;
  v_range record;
BEGIN
  IF p_seconds IS NULL OR NOT p_seconds >= 1 THEN
    RAISE EXCEPTION 'a history partition spans at least 1 second, not %', p_seconds
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR v_range IN SELECT * FROM {{schema}}.history_ranges() LOOP
    IF v_range.starts_at <= p_at AND p_at < v_range.ends_at THEN
      RETURN v_range.name;
    END IF;
    IF v_range.ends_at > v_from AND v_range.ends_at <= p_at THEN
      v_from := v_range.ends_at;
    END IF;
    IF v_range.starts_at < v_to AND v_range.starts_at > p_at THEN
      v_to := v_range.starts_at;
    END IF;
  END LOOP;
  v_name := 'job_history_' || to_char(v_from AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MISS');
  BEGIN
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF {{schema}}.job_history FOR VALUES FROM (%L) TO (%L)',
                   v_schema, v_name, v_from, v_to);
  EXCEPTION WHEN duplicate_table OR unique_violation THEN
    RETURN format('%I.%I', v_schema, v_name)::regclass;  -- another mover made it meanwhile
  END;
  v_table := format('%I.%I', v_schema, v_name)::regclass;
  INSERT INTO {{schema}}.owned_objects (type, identity)
  SELECT o.type, o.identity FROM pg_identify_object('pg_class'::regclass, v_table, 0) o
  ON CONFLICT DO NOTHING;
  PERFORM {{schema}}.secure_schema();
  RETURN v_table;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.history_ranges()
 RETURNS TABLE(name regclass, starts_at timestamp with time zone, ends_at timestamp with time zone)
 LANGUAGE sql
 STABLE
AS $function$
  SELECT c.oid::regclass,
         (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
         (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = '{{schema}}.job_history'::regclass
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.insert_unique_job(p_type text, p_queue text, p_priority integer, p_payload jsonb, p_max_attempts integer, p_run_at timestamp with time zone, p_timeout_seconds double precision, p_brief_id uuid, p_unique_key text, p_unique_for_seconds double precision DEFAULT NULL::double precision)
 RETURNS TABLE(duplicate boolean, job {{schema}}.jobs)
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.insert_unique_job_v2(p_type text, p_queue text, p_priority integer, p_payload jsonb, p_max_attempts integer, p_run_at timestamp with time zone, p_timeout_seconds double precision, p_brief_id uuid, p_unique_key text, p_unique_for_seconds double precision DEFAULT NULL::double precision, p_fairness_key text DEFAULT ''::text)
 RETURNS TABLE(duplicate boolean, job {{schema}}.jobs)
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_row {{schema}}.jobs;
BEGIN
  IF p_unique_key IS NULL THEN
    RAISE EXCEPTION 'insert_unique_job needs a unique key' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Three rounds at most: each lost round means another transaction released or took the key meanwhile.
  FOR v_round IN 1..3 LOOP
    INSERT INTO {{schema}}.jobs AS j (type, queue, priority, payload, max_attempts, run_at, timeout_seconds,
                                      brief_id, unique_key, unique_until, fairness_key)
    VALUES (p_type, p_queue, p_priority, p_payload, p_max_attempts, coalesce(p_run_at, now()), p_timeout_seconds,
            p_brief_id, p_unique_key, now() + make_interval(secs => p_unique_for_seconds), p_fairness_key)
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
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.is_blank(p_value text)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT p_value ~ '^[\s\u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$'
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.job_document(p_job {{schema}}.jobs)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
  SELECT to_jsonb(p_job) || jsonb_build_object('depends_on', coalesce(
    (SELECT jsonb_agg(d.depends_on ORDER BY d.depends_on) FROM {{schema}}.job_dependencies d
      WHERE d.job_id = p_job.id), '[]'::jsonb))
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.job_field_integer(p_item jsonb, p_field text, p_default bigint, p_message text)
 RETURNS bigint
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
BEGIN
  IF NOT p_item ? p_field THEN
    RETURN p_default;
  END IF;
  IF jsonb_typeof(p_item -> p_field) = 'number' AND (p_item ->> p_field) ~ '^-?[0-9]{1,19}$'
     AND (p_item ->> p_field)::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
    RETURN (p_item ->> p_field)::bigint;
  END IF;
  PERFORM {{schema}}.raise_invalid(p_message, p_field);
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.job_field_seconds(p_item jsonb, p_field text, p_positive boolean)
 RETURNS double precision
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
BEGIN
  IF jsonb_typeof(p_item -> p_field) IS NULL OR jsonb_typeof(p_item -> p_field) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(p_item -> p_field) = 'number' THEN
    RETURN (p_item ->> p_field)::double precision;
  END IF;
  PERFORM {{schema}}.raise_invalid(
    format('%s must be a finite number of seconds %s, not %s', p_field, CASE WHEN p_positive THEN '> 0' ELSE '>= 0' END,
           p_item -> p_field), p_field);
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.job_field_text(p_item jsonb, p_field text, p_default text)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
BEGIN
  IF NOT p_item ? p_field THEN
    RETURN p_default;
  END IF;
  IF jsonb_typeof(p_item -> p_field) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(p_item -> p_field) <> 'string' THEN
    PERFORM {{schema}}.raise_invalid(
      format('%s must be a string, not %s', p_field, {{schema}}.json_type_name(p_item -> p_field)), p_field);
  END IF;
  RETURN p_item ->> p_field;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.job_starts_of(p_worker_id text)
 RETURNS bigint
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  SELECT started_through FROM {{schema}}.worker_starts WHERE worker_id = p_worker_id
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.jobs_with_parents(p_ids bigint[])
 RETURNS SETOF bigint
 LANGUAGE sql
 STABLE
 SET jit TO 'off'
AS $function$
  SELECT DISTINCT d.job_id FROM {{schema}}.job_dependencies d WHERE d.job_id = ANY (p_ids)
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.json_type_name(p_value jsonb)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE jsonb_typeof(p_value)
           WHEN 'string' THEN 'str' WHEN 'boolean' THEN 'bool' WHEN 'array' THEN 'list' WHEN 'object' THEN 'dict'
           WHEN 'number' THEN CASE WHEN p_value::text ~ '^-?[0-9]+$' THEN 'int' ELSE 'float' END
           ELSE 'NoneType' END
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.list_briefs(user_id text DEFAULT NULL::text, status text DEFAULT NULL::text, before timestamp with time zone DEFAULT NULL::timestamp with time zone, "limit" integer DEFAULT 50)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $function$
BEGIN
  IF list_briefs.status IS NOT NULL
     AND list_briefs.status NOT IN ('failed', 'cancelled', 'completed', 'processing', 'pending') THEN
    PERFORM {{schema}}.raise_invalid(format('status must be one of failed, cancelled, completed, processing, pending, '
                                            'not %s', {{schema}}.repr(list_briefs.status)), 'status');
  END IF;
  IF list_briefs."limit" IS NULL OR list_briefs."limit" NOT BETWEEN 1 AND 10000 THEN
    PERFORM {{schema}}.raise_invalid('limit must be an integer between 1 and 10000', 'limit');
  END IF;
  IF list_briefs.user_id IS NOT NULL THEN
    PERFORM {{schema}}.check_text('user_id', list_briefs.user_id, 255);
  END IF;
  RETURN coalesce((
    SELECT jsonb_agg(to_jsonb(b) ORDER BY b.created_at DESC, b.id)
      FROM (SELECT * FROM {{schema}}.briefs_with_status w
             WHERE (list_briefs.user_id IS NULL OR w.user_id = list_briefs.user_id)
               AND (list_briefs.status IS NULL OR w.status = list_briefs.status)
               AND (list_briefs.before IS NULL OR w.created_at < list_briefs.before)
             ORDER BY w.created_at DESC, w.id
             LIMIT list_briefs."limit") b), '[]'::jsonb);
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.notify_job_controls()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.paused THEN
      PERFORM pg_catalog.pg_notify({{channel}}, '');
    END IF;
    IF OLD.rate_limit IS NOT NULL THEN
      PERFORM pg_catalog.pg_notify({{channel}}, 'limits:' || OLD.scope || ':' || OLD.name);
    END IF;
    RETURN NULL;
  END IF;
  IF NEW.paused AND (TG_OP = 'INSERT' OR NOT OLD.paused) THEN
    PERFORM pg_catalog.pg_notify({{channel}}, 'paused:' || NEW.scope || ':' || NEW.name);
  ELSIF NOT NEW.paused AND TG_OP = 'UPDATE' AND OLD.paused THEN
    PERFORM pg_catalog.pg_notify({{channel}}, '');
  END IF;
  IF (TG_OP = 'INSERT' AND NEW.rate_limit IS NOT NULL)
     OR (TG_OP = 'UPDATE'
         AND (NEW.rate_limit, NEW.rate_period_seconds) IS DISTINCT FROM (OLD.rate_limit, OLD.rate_period_seconds)) THEN
    PERFORM pg_catalog.pg_notify({{channel}}, 'limits:' || NEW.scope || ':' || NEW.name);
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.notify_jobs_inserted()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
AS $function$
BEGIN
  IF EXISTS (SELECT 1 FROM {{schema}}.waiting_workers w WHERE w.until OPERATOR(pg_catalog.>) pg_catalog.now()) THEN
    PERFORM pg_catalog.pg_notify({{channel}}, '');
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.pipelines()
 RETURNS TABLE(media_type text, steps text[])
 LANGUAGE sql
 IMMUTABLE
AS $function$
  VALUES ('video', ARRAY['analysis', 'asset_prep', 'video_generation', 'render']),
         ('image', ARRAY['analysis', 'asset_prep', 'image_processing', 'render']),
         ('audio', ARRAY['analysis', 'asset_prep', 'render']),
         ('text', ARRAY['analysis', 'text_analysis', 'render'])
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.prune_finished_jobs(p_status {{schema}}.job_status, p_older_than_seconds double precision, p_limit integer)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.raise_invalid(p_message text, p_field text DEFAULT NULL::text)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
BEGIN
  IF p_field IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = p_message;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = p_message, COLUMN = p_field,
                        DETAIL = 'field: ' || p_field;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.record_job_starts(p_worker_id text, p_through bigint)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
  INSERT INTO {{schema}}.worker_starts AS w (worker_id, started_through) VALUES (p_worker_id, p_through)
  ON CONFLICT (worker_id) DO UPDATE
    SET started_through = greatest(w.started_through, excluded.started_through), updated_at = now()
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.record_job_starts_alone(p_worker_id text, p_through bigint)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
  SELECT set_config('synchronous_commit', 'off', true);
  SELECT {{schema}}.record_job_starts(p_worker_id, p_through)
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.release_jobs(p_worker_id text, p_ids bigint[], p_attempts integer[])
 RETURNS SETOF bigint
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.repr(p_value text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE WHEN p_value IS NULL THEN 'None'
              WHEN position('''' IN p_value) > 0 AND position('"' IN p_value) = 0 THEN '"' || p_value || '"'
              ELSE '''' || replace(replace(p_value, '\', '\\'), '''', '\''') || '''' END
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.request_user_id()
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  SELECT coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub',
                  nullif(current_setting('request.jwt.claim.sub', true), ''), '')
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.rescue_expired_jobs(p_limit integer DEFAULT 1000, p_retry_base_seconds double precision DEFAULT 5, p_retry_cap_seconds double precision DEFAULT 3600)
 RETURNS TABLE(id bigint, type text, attempts integer, status {{schema}}.job_status, worker_id text)
 LANGUAGE sql
AS $function$
  SELECT r.id, r.type, r.attempts, r.status, r.worker_id
    FROM {{schema}}.rescue_expired_jobs_v2(NULL, p_limit, p_retry_base_seconds, p_retry_cap_seconds) r
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.rescue_expired_jobs_v2(p_worker_id text DEFAULT NULL::text, p_limit integer DEFAULT 1000, p_retry_base_seconds double precision DEFAULT 5, p_retry_cap_seconds double precision DEFAULT 3600, p_grace_seconds double precision DEFAULT 30)
 RETURNS TABLE(id bigint, type text, attempts integer, status {{schema}}.job_status, worker_id text, started boolean)
 LANGUAGE sql
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
AS $function$
  SELECT * FROM {{schema}}.rescue_expired_jobs_v3(
    p_worker_id, NULL, p_limit, p_retry_base_seconds, p_retry_cap_seconds, p_grace_seconds)
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.rescue_expired_jobs_v3(p_worker_id text, p_held bigint[], p_limit integer DEFAULT 1000, p_retry_base_seconds double precision DEFAULT 5, p_retry_cap_seconds double precision DEFAULT 3600, p_grace_seconds double precision DEFAULT 30)
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

CREATE OR REPLACE FUNCTION {{schema}}.retry_brief(p_brief_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_id bigint;
  v_round integer;
  v_count integer := 0;
BEGIN
  LOOP
    v_round := 0;
    FOR v_id IN
      SELECT id FROM {{schema}}.jobs
       WHERE brief_id = p_brief_id
         AND (status = 'failed'
              OR (status = 'cancelled' AND coalesce(last_error, '') NOT LIKE 'cancelled: %dependency%'))
       ORDER BY id
    LOOP
      IF {{schema}}.retry_job(v_id) IS NOT NULL THEN
        v_round := v_round + 1;
      END IF;
    END LOOP;
    v_count := v_count + v_round;
    EXIT WHEN v_round = 0;
  END LOOP;
  RETURN v_count;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.retry_delay(p_attempt integer, p_base_seconds double precision DEFAULT 5, p_cap_seconds double precision DEFAULT 3600)
 RETURNS interval
 LANGUAGE sql
AS $function$
  SELECT make_interval(secs => least(p_cap_seconds, p_base_seconds * power(2, greatest(p_attempt, 1) - 1))
                               * (0.85 + random() * 0.3))
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.retry_job(p_job_id bigint)
 RETURNS {{schema}}.job_status
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_status {{schema}}.job_status;
BEGIN
  UPDATE {{schema}}.jobs j
     SET status = CASE WHEN EXISTS (
                    SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs p ON p.id = d.depends_on
                     WHERE d.job_id = j.id AND p.status <> 'completed')
                  THEN 'waiting' ELSE 'pending' END::{{schema}}.job_status,
         run_at = now(), completed_at = NULL, worker_id = NULL, lease_expires_at = NULL,
         max_attempts = greatest(j.max_attempts, j.attempts + 1)
   WHERE j.id = p_job_id AND j.status IN ('failed', 'cancelled')
     AND NOT EXISTS (
           SELECT 1 FROM {{schema}}.job_dependencies d JOIN {{schema}}.jobs p ON p.id = d.depends_on
            WHERE d.job_id = j.id AND p.status IN ('failed', 'cancelled'))
  RETURNING j.status INTO v_status;
  IF v_status IS NOT NULL THEN
    WITH RECURSIVE descendants(id) AS (
      SELECT d.job_id FROM {{schema}}.job_dependencies d WHERE d.depends_on = p_job_id
      UNION
      SELECT d.job_id FROM {{schema}}.job_dependencies d JOIN descendants x ON d.depends_on = x.id
    )
    UPDATE {{schema}}.jobs c
       SET status = 'waiting', completed_at = NULL, last_error = NULL
     WHERE c.id IN (SELECT id FROM descendants) AND c.status = 'cancelled'
       AND c.last_error LIKE 'cancelled: %dependency%';
    PERFORM pg_notify({{channel}}, '');
  END IF;
  RETURN v_status;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.secure_schema()
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
  v_schema oid := to_regnamespace((parse_ident('{{schema}}'))[1]);
  v_public_roles text := 'PUBLIC';
  v_service boolean := EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role');
  v_relations regclass[];
  v_relation regclass;
  v_kind "char";
  v_object record;
BEGIN
  SELECT string_agg(r, ', ') INTO v_public_roles
    FROM unnest(ARRAY['PUBLIC', 'anon', 'authenticated']) r
   WHERE r = 'PUBLIC' OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);

  IF EXISTS (SELECT 1 FROM {{schema}}.owned_objects o, pg_identify_object('pg_namespace'::regclass, v_schema, 0) i
              WHERE o.type = i.type AND o.identity = i.identity) THEN
    EXECUTE format('REVOKE ALL ON SCHEMA %s FROM %s', v_schema::regnamespace, v_public_roles);
    IF v_service THEN
      EXECUTE format('GRANT USAGE ON SCHEMA %s TO service_role', v_schema::regnamespace);
    END IF;
  END IF;

  -- Read the list first: the loop alters owned_objects itself, which an open query on it would forbid.
  SELECT array_agg(c.oid::regclass ORDER BY c.oid) INTO v_relations
    FROM pg_class c CROSS JOIN LATERAL pg_identify_object('pg_class'::regclass, c.oid, 0) i
    JOIN {{schema}}.owned_objects o ON o.type = i.type AND o.identity = i.identity
   WHERE c.relnamespace = v_schema;
  FOREACH v_relation IN ARRAY coalesce(v_relations, '{}') LOOP
    v_kind := (SELECT relkind FROM pg_class WHERE oid = v_relation);
    IF v_kind = 'S' THEN
      EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %s', v_relation, v_public_roles);
      IF v_service THEN
        EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO service_role', v_relation);
      END IF;
      CONTINUE;
    END IF;
    EXECUTE format('REVOKE ALL ON TABLE %s FROM %s', v_relation, v_public_roles);
    IF v_service THEN
      EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO service_role', v_relation);
    END IF;
    -- Tables only: views run as their owner and have no RLS of their own.
    -- Only where it is off: ALTER TABLE takes an exclusive lock even when it changes nothing.
    IF v_kind IN ('r', 'p') THEN
      IF NOT (SELECT relrowsecurity FROM pg_class WHERE oid = v_relation) THEN
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_relation);
      END IF;
      -- Supabase's service_role bypasses RLS; a policy keeps it working where a copy of the role does not.
      IF v_service AND NOT EXISTS (
           SELECT 1 FROM pg_policy WHERE polrelid = v_relation AND polname = 'service_role_all') THEN
        EXECUTE format('CREATE POLICY service_role_all ON %s TO service_role USING (true) WITH CHECK (true)',
                       v_relation);
      END IF;
    END IF;
  END LOOP;

  FOR v_object IN
    SELECT p.oid::regprocedure AS name
      FROM pg_proc p CROSS JOIN LATERAL pg_identify_object('pg_proc'::regclass, p.oid, 0) i
      JOIN {{schema}}.owned_objects o ON o.type = i.type AND o.identity = i.identity
     WHERE p.pronamespace = v_schema
     ORDER BY p.oid
  LOOP
    EXECUTE format('REVOKE ALL ON ROUTINE %s FROM %s', v_object.name, v_public_roles);
    IF v_service THEN
      EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO service_role', v_object.name);
    END IF;
  END LOOP;

  -- secure_schema() itself is only for the owner: it re-grants, so service_role must not run it, nor
  -- change the list it works from.
  IF v_service THEN
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON TABLE %s FROM service_role',
                   '{{schema}}.owned_objects'::regclass);
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM service_role', '{{schema}}.secure_schema()'::regprocedure);
  END IF;

  IF EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = '{{schema}}.briefs'::regclass AND polname = 'briefs_owner_select')
  THEN
    PERFORM {{schema}}.expose_briefs(true);
  END IF;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.set_job_limits(p_type text, p_max_running integer, p_rate_limit integer, p_rate_period_seconds double precision)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.set_job_paused(p_scope text, p_name text, p_paused boolean)
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
  INSERT INTO {{schema}}.job_controls (scope, name, paused) VALUES (p_scope, p_name, p_paused)
  ON CONFLICT (scope, name) DO UPDATE SET paused = excluded.paused, updated_at = now();
  PERFORM {{schema}}.drop_empty_job_control(p_scope, p_name);
  RETURN p_paused;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.stop_waiting_for_jobs(p_worker_id text)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
  DELETE FROM {{schema}}.waiting_workers WHERE worker_id = p_worker_id
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.unblock_dependents(p_parent_ids bigint[])
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
  v_count integer;
BEGIN
  PERFORM 1 FROM {{schema}}.jobs c
   WHERE c.status = 'waiting'
     AND c.id IN (SELECT d.job_id FROM {{schema}}.job_dependencies d WHERE d.depends_on = ANY (p_parent_ids))
   ORDER BY c.id
     FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;
  UPDATE {{schema}}.jobs c
     SET status = 'pending', run_at = greatest(c.run_at, now())
   WHERE c.status = 'waiting'
     AND c.id IN (SELECT d.job_id FROM {{schema}}.job_dependencies d WHERE d.depends_on = ANY (p_parent_ids))
     AND NOT EXISTS (
           SELECT 1 FROM {{schema}}.job_dependencies d
             JOIN {{schema}}.jobs p ON p.id = d.depends_on
            WHERE d.job_id = c.id AND p.status <> 'completed');
  GET DIAGNOSTICS v_count = ROW_COUNT;
  IF v_count > 0 THEN
    PERFORM pg_notify({{channel}}, '');
  END IF;
  RETURN v_count;
END $function$;

CREATE OR REPLACE FUNCTION {{schema}}.update_job_progress(p_worker_id text, p_ids bigint[], p_attempts integer[], p_percents real[], p_messages text[])
 RETURNS SETOF bigint
 LANGUAGE sql
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
AS $function$
  UPDATE {{schema}}.jobs j
     SET progress = r.percent, progress_message = r.message, progress_at = now()
    FROM unnest(p_ids, p_attempts, p_percents, p_messages) AS r(id, attempt, percent, message)
   WHERE j.id = r.id AND j.worker_id = p_worker_id AND j.attempts = r.attempt
     AND j.status::text = 'processing'
  RETURNING j.id
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.upstream_results(p_job_id bigint)
 RETURNS TABLE(id bigint, type text, result jsonb, depth integer)
 LANGUAGE sql
 STABLE
 SET jit TO 'off'
AS $function$
  WITH RECURSIVE ancestors(id, depth) AS (
    SELECT d.depends_on, 1 FROM {{schema}}.job_dependencies d WHERE d.job_id = p_job_id
    UNION
    SELECT d.depends_on, a.depth + 1 FROM {{schema}}.job_dependencies d JOIN ancestors a ON d.job_id = a.id
  )
  SELECT j.id, j.type, j.result, min(a.depth)::integer AS depth
    FROM ancestors a JOIN {{schema}}.jobs j ON j.id = a.id
   WHERE j.status = 'completed'
   GROUP BY j.id
   ORDER BY depth DESC, j.id
$function$;

CREATE OR REPLACE FUNCTION {{schema}}.wait_for_jobs(p_worker_id text, p_seconds double precision)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
  INSERT INTO {{schema}}.waiting_workers AS w (worker_id, until)
  VALUES (p_worker_id, now() + make_interval(secs => p_seconds))
  ON CONFLICT (worker_id) DO UPDATE SET until = excluded.until
$function$;

-- -- triggers, by table -------------------------------------------------------------------------------------------

CREATE TRIGGER job_controls_notify AFTER INSERT OR DELETE OR UPDATE OF paused, rate_limit, rate_period_seconds ON {{schema}}.job_controls FOR EACH ROW EXECUTE FUNCTION {{schema}}.notify_job_controls();

CREATE TRIGGER job_dependencies_check AFTER INSERT ON {{schema}}.job_dependencies REFERENCING NEW TABLE AS new_deps FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.check_job_dependencies();

CREATE TRIGGER jobs_notify_inserted AFTER INSERT ON {{schema}}.jobs FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.notify_jobs_inserted();

-- -- row-level security and policies, by table --------------------------------------------------------------------

ALTER TABLE {{schema}}.briefs ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.briefs TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.fairness_weights ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.fairness_weights TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.job_controls ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.job_controls TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.job_dependencies ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.job_dependencies TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.job_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.job_history TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.jobs TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.leaders ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.leaders TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.migrations ENABLE ROW LEVEL SECURITY;
CREATE POLICY migrations_readable ON {{schema}}.migrations FOR SELECT TO PUBLIC USING (true);
CREATE POLICY service_role_all ON {{schema}}.migrations TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.owned_objects ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.owned_objects TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.periodic_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.periodic_jobs TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.waiting_workers ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.waiting_workers TO service_role USING (true) WITH CHECK (true);

ALTER TABLE {{schema}}.worker_starts ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_role_all ON {{schema}}.worker_starts TO service_role USING (true) WITH CHECK (true);

-- -- privileges (the owner's are left out; what is not granted here is not granted, to PUBLIC either) -------------

GRANT USAGE ON SCHEMA {{schema}} TO service_role;

GRANT USAGE ON TYPE {{schema}}.job_status TO PUBLIC;

GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.active_jobs TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.briefs TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.briefs_with_status TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.fairness_weights TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.job_controls TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.job_dependencies TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.job_history TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.job_stats TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.jobs TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.jobs_with_history TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.leaders TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.migrations TO service_role;
GRANT SELECT ON TABLE {{schema}}.owned_objects TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.pending_jobs_queue TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.periodic_jobs TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.waiting_workers TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {{schema}}.worker_starts TO service_role;

GRANT SELECT, USAGE ON SEQUENCE {{schema}}.jobs_id_seq TO service_role;

GRANT EXECUTE ON FUNCTION {{schema}}.advance_periodic_job(text,timestamp with time zone,timestamp with time zone,boolean) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.archive_finished_jobs(double precision,integer,double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.brief_document(uuid,boolean) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.brief_step_columns() TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.brief_steps(text,boolean) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.cancel_brief(uuid,text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.cancel_dependents(bigint[],text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.cancel_job(bigint,text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.check_briefs_exist(uuid[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.check_job(text,jsonb,bigint,timestamp with time zone,double precision,bigint,double precision,text,text,double precision,bigint[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.check_job_dependencies() TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.check_json_depth(text,jsonb,integer) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.check_parents(text,bigint[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.check_seconds(text,double precision,double precision,boolean) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.check_text(text,text,integer,boolean) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.claim_job(text,text[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.claim_jobs(text,text[],integer,double precision,text[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.claim_jobs_v2(text,text[],integer,double precision,text[],integer,bigint) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.complete_job(bigint,text,jsonb,integer) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.complete_jobs(text,bigint[],integer[],jsonb[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.create_brief_with_job(text,text,text,text,text,boolean,text[],jsonb,bigint,bigint,text,text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.create_job(text,jsonb,bigint,timestamp with time zone,double precision,bigint,double precision,uuid,text,text,double precision,bigint[],text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.create_jobs(jsonb) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.drop_empty_job_control(text,text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.drop_history_partitions(double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.elect_leader(text,text,double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.expose_briefs(boolean) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.fail_job(bigint,text,text,integer,double precision,double precision,boolean) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.forget_dead_job_starts(text[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.forget_job_starts(text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.format_g(double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.get_brief(uuid) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.get_job(bigint) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.heartbeat_jobs(text,bigint[],double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.history_partition(timestamp with time zone,double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.history_ranges() TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.insert_unique_job(text,text,integer,jsonb,integer,timestamp with time zone,double precision,uuid,text,double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.insert_unique_job_v2(text,text,integer,jsonb,integer,timestamp with time zone,double precision,uuid,text,double precision,text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.is_blank(text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.job_document({{schema}}.jobs) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.job_field_integer(jsonb,text,bigint,text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.job_field_seconds(jsonb,text,boolean) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.job_field_text(jsonb,text,text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.job_starts_of(text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.jobs_with_parents(bigint[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.json_type_name(jsonb) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.list_briefs(text,text,timestamp with time zone,integer) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.notify_job_controls() TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.notify_jobs_inserted() TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.pipelines() TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.prune_finished_jobs({{schema}}.job_status,double precision,integer) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.raise_invalid(text,text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.record_job_starts(text,bigint) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.record_job_starts_alone(text,bigint) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.release_jobs(text,bigint[],integer[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.repr(text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.request_user_id() TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.rescue_expired_jobs(integer,double precision,double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.rescue_expired_jobs_v2(text,integer,double precision,double precision,double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.rescue_expired_jobs_v3(text,bigint[],integer,double precision,double precision,double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.retry_brief(uuid) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.retry_delay(integer,double precision,double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.retry_job(bigint) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.set_job_limits(text,integer,integer,double precision) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.set_job_paused(text,text,boolean) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.stop_waiting_for_jobs(text) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.unblock_dependents(bigint[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.update_job_progress(text,bigint[],integer[],real[],text[]) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.upstream_results(bigint) TO service_role;
GRANT EXECUTE ON FUNCTION {{schema}}.wait_for_jobs(text,double precision) TO service_role;
