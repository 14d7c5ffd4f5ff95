-- 0013: fair shares across tenants. A job may name its tenant (`fairness_key`; a brief's steps use its user_id
-- unless told otherwise; no key is the tenant ''), and a tenant may have a weight (`fairness_weights`, 1 when
-- not listed). While more than one tenant has jobs queued, each claim shares its batch between them by
-- weight, in the claim statement itself:
--
-- - the tenants with pending jobs are read from the index jobs_fair_claim_idx, one probe each (a skip scan),
--   up to 1000 of them, from a random point of the key order when there are more;
-- - each tenant's share of the batch is ceil(limit * weight / total weight), and the tenants take their shares
--   in a random order weighted by their weights (exponential races), so that a batch smaller than the number
--   of tenants still serves each in proportion over successive claims;
-- - within a tenant, jobs go in claim order (priority, run_at, id); across tenants, shares come first and
--   priorities second (a tenant's urgent job does not jump other tenants' shares);
-- - work-conserving: what the shares leave of the batch (tenants with fewer jobs than their share, or none
--   of this worker's types) is claimed in plain claim order, as without fairness;
-- - pauses and global limits apply as before: paused types and queues are skipped, and limited types are
--   claimed within their limits after the shares.
--
-- With one tenant (or none) a claim costs two index probes more than before and runs the plain path.

ALTER TABLE {{schema}}.jobs
  ADD COLUMN fairness_key text NOT NULL DEFAULT '',
  ADD CONSTRAINT jobs_fairness_key_valid CHECK (length(fairness_key) <= 256);
COMMENT ON COLUMN {{schema}}.jobs.fairness_key IS
  'the tenant whose share of the workers this job uses (see claim_jobs_v2); the empty key is the default tenant';

-- Runnable jobs by tenant, in claim order within each: the skip scan over tenants and each tenant's share.
CREATE INDEX jobs_fair_claim_idx ON {{schema}}.jobs (fairness_key, priority, run_at, id) WHERE status = 'pending';

CREATE TABLE {{schema}}.fairness_weights (
  key        text PRIMARY KEY,
  weight     integer NOT NULL CHECK (weight BETWEEN 1 AND 10000),
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE {{schema}}.fairness_weights IS
  'weight of a tenant (fairness_key) in the claim''s shares; a tenant not listed weighs 1';

CREATE OR REPLACE FUNCTION {{schema}}.claim_jobs_v2(
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
  v_paused_types text[] := '{}';
  v_paused_queues text[] := '{}';
  v_limited text[] := '{}';
  v_allowed integer[] := '{}';
  v_any_free boolean := true;
  v_controls boolean;
  v_first text;
  v_last text;
  v_keys text[];
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
  IF v_first IS DISTINCT FROM v_last THEN
    v_keys := ARRAY(
      WITH RECURSIVE k(key) AS (
        SELECT v_first
        UNION ALL
        SELECT (SELECT c.fairness_key FROM {{schema}}.jobs c
                 WHERE c.status = 'pending' AND c.fairness_key > k.key ORDER BY c.fairness_key LIMIT 1)
          FROM k WHERE k.key IS NOT NULL)
      SELECT k.key FROM k WHERE k.key IS NOT NULL LIMIT 1001);
    IF cardinality(v_keys) > 1000 THEN
      -- More tenants than one claim looks at: 1000 of them from a random point of the key order onwards (and
      -- round to its start), so that over many claims each is looked at.
      v_keys := ARRAY(
        WITH RECURSIVE k(key, n) AS (
          SELECT coalesce(
                   (SELECT c.fairness_key FROM {{schema}}.jobs c
                     WHERE c.status = 'pending' AND c.fairness_key >= md5(random()::text)
                     ORDER BY c.fairness_key LIMIT 1), v_first), 1
          UNION ALL
          SELECT coalesce(
                   (SELECT c.fairness_key FROM {{schema}}.jobs c
                     WHERE c.status = 'pending' AND c.fairness_key > k.key ORDER BY c.fairness_key LIMIT 1),
                   v_first), k.n + 1
            FROM k WHERE k.n < 1000)
        SELECT DISTINCT k.key FROM k);
    END IF;
  END IF;

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
  END IF;

  IF v_keys IS NULL AND NOT v_controls THEN
    v_ids := ARRAY(
      SELECT c.id FROM {{schema}}.jobs c
       WHERE c.status = 'pending'
         AND c.run_at <= now()
         AND (p_types IS NULL OR c.type = ANY (p_types))
         AND (p_queues IS NULL OR c.queue = ANY (p_queues))
       ORDER BY c.priority, c.run_at, c.id
       LIMIT p_limit
         FOR UPDATE SKIP LOCKED);
  ELSIF v_keys IS NULL THEN
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
  ELSE
    -- The shares: each tenant's, in a random order weighted by weight; only as many tenants as the batch needs.
    v_ids := ARRAY(
      WITH tenant AS (
        SELECT k.key, coalesce(w.weight, 1) AS weight, -ln(1.0 - random()) / coalesce(w.weight, 1) AS draw
          FROM unnest(v_keys) AS k(key)
          LEFT JOIN {{schema}}.fairness_weights w ON w.key = k.key
      ), share AS (
        SELECT t.key, t.draw, ceil(p_limit::numeric * t.weight / sum(t.weight) OVER ())::integer AS quota
          FROM tenant t
      ), turn AS (
        SELECT s.key, s.draw, s.quota, sum(s.quota) OVER (ORDER BY s.draw) - s.quota AS before
          FROM share s
      )
      SELECT p.id FROM turn t
       CROSS JOIN LATERAL (
             SELECT c.id, c.priority, c.run_at FROM {{schema}}.jobs c
              WHERE c.status = 'pending'
                AND c.fairness_key = t.key
                AND c.run_at <= now()
                AND (p_types IS NULL OR c.type = ANY (p_types))
                AND (p_queues IS NULL OR c.queue = ANY (p_queues))
                AND c.type <> ALL (v_limited) AND c.type <> ALL (v_paused_types)
                AND c.queue <> ALL (v_paused_queues)
              ORDER BY c.priority, c.run_at, c.id
              LIMIT t.quota
                FOR UPDATE SKIP LOCKED) p
       WHERE t.before < p_limit AND v_any_free
       ORDER BY t.draw, p.priority, p.run_at, p.id
       LIMIT p_limit);
    -- What the shares left: in plain claim order (work-conserving), then the limited types within their limits.
    IF cardinality(v_ids) < p_limit AND v_any_free THEN
      v_ids := v_ids || ARRAY(
        SELECT c.id FROM {{schema}}.jobs c
         WHERE c.status = 'pending'
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

  IF v_controls THEN
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

-- insert_unique_job with the job's tenant; the old signature stays for the release before this one.
CREATE FUNCTION {{schema}}.insert_unique_job_v2(
  p_type text,
  p_queue text,
  p_priority integer,
  p_payload jsonb,
  p_max_attempts integer,
  p_run_at timestamptz,
  p_timeout_seconds double precision,
  p_brief_id uuid,
  p_unique_key text,
  p_unique_for_seconds double precision DEFAULT NULL,
  p_fairness_key text DEFAULT ''
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
END $$;

-- The SQL API takes the tenant too: create_job(fairness_key => ...), create_jobs items' "fairness_key", and
-- create_brief_with_job(fairness_key => ...), whose steps otherwise use the brief's user_id. create_job and
-- create_brief_with_job gain an argument, so they are made again (a call without it reads as before).
DROP FUNCTION {{schema}}.create_job(text, jsonb, bigint, timestamptz, double precision, bigint, double precision,
                                    uuid, text, text, double precision, bigint[]);
DROP FUNCTION {{schema}}.create_brief_with_job(text, text, text, text, text, boolean, text[], jsonb, bigint, bigint,
                                               text);
DELETE FROM {{schema}}.owned_objects o
 WHERE o.type = 'function'
   AND o.identity NOT IN (SELECT i.identity FROM pg_proc p
                           CROSS JOIN LATERAL pg_identify_object('pg_proc'::regclass, p.oid, 0) i
                          WHERE p.pronamespace = to_regnamespace((parse_ident('{{schema}}'))[1]));

CREATE FUNCTION {{schema}}.create_job(
  type text,
  payload jsonb DEFAULT '{}',
  priority bigint DEFAULT 0,
  run_at timestamptz DEFAULT NULL,
  delay double precision DEFAULT NULL,
  max_attempts bigint DEFAULT 3,
  timeout double precision DEFAULT NULL,
  brief_id uuid DEFAULT NULL,
  queue text DEFAULT 'default',
  unique_key text DEFAULT NULL,
  unique_for double precision DEFAULT NULL,
  depends_on bigint[] DEFAULT NULL,
  fairness_key text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
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
      PERFORM {{schema}}.raise_invalid('unique_key cannot be combined with depends_on (yet): give one or the other');
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
END $$;

CREATE OR REPLACE FUNCTION {{schema}}.create_jobs(jobs jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
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
        PERFORM {{schema}}.raise_invalid(format('a job may depend on at most 1000 jobs, not %s', jsonb_array_length(v_ref)));
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
END $$;

CREATE FUNCTION {{schema}}.create_brief_with_job(
  user_id text DEFAULT NULL,
  title text DEFAULT '',
  description text DEFAULT '',
  query text DEFAULT NULL,
  media_type text DEFAULT NULL,
  use_pipeline boolean DEFAULT false,
  steps text[] DEFAULT NULL,
  options jsonb DEFAULT NULL,
  priority bigint DEFAULT 0,
  max_attempts bigint DEFAULT 3,
  queue text DEFAULT 'default',
  fairness_key text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_plan text[];
  v_step text;
  v_msg text;
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
                                            {{schema}}.repr(create_brief_with_job.media_type)));
  END IF;
  IF create_brief_with_job.use_pipeline IS NULL THEN
    PERFORM {{schema}}.raise_invalid('use_pipeline must be true or false, not None');
  END IF;
  IF create_brief_with_job.steps IS NULL THEN
    v_plan := {{schema}}.brief_steps(create_brief_with_job.media_type, create_brief_with_job.use_pipeline);
  ELSE
    -- pipelines.check_steps
    IF coalesce(cardinality(create_brief_with_job.steps), 0) NOT BETWEEN 1 AND 50 THEN
      PERFORM {{schema}}.raise_invalid('steps must hold between 1 and 50 job types');
    END IF;
    FOREACH v_step IN ARRAY create_brief_with_job.steps LOOP
      IF v_step IS NULL OR {{schema}}.is_blank(v_step) OR length(v_step) > 128 THEN
        PERFORM {{schema}}.raise_invalid(
          'each step must be a non-empty job type of at most 128 characters, not ' || {{schema}}.repr(v_step));
      END IF;
    END LOOP;
    v_plan := create_brief_with_job.steps;
  END IF;
  IF create_brief_with_job.fairness_key IS NOT NULL THEN
    PERFORM {{schema}}.check_text('fairness_key', create_brief_with_job.fairness_key, 256, true);
  END IF;
  IF create_brief_with_job.options IS NOT NULL THEN
    IF jsonb_typeof(create_brief_with_job.options) <> 'object' THEN
      PERFORM {{schema}}.raise_invalid('options must be a mapping of extra payload fields');
    END IF;
    PERFORM {{schema}}.check_json_depth('options', create_brief_with_job.options);
  END IF;
  BEGIN
    PERFORM {{schema}}.check_job(v_plan[1], '{}', create_brief_with_job.priority, NULL, NULL,
                                 create_brief_with_job.max_attempts, NULL, create_brief_with_job.queue, NULL, NULL, NULL);
  EXCEPTION WHEN invalid_parameter_value THEN
    GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT;
    PERFORM {{schema}}.raise_invalid(v_msg);
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
END $$;

INSERT INTO {{schema}}.owned_objects (type, identity)
SELECT o.type, o.identity
  FROM pg_identify_object('pg_class'::regclass, '{{schema}}.fairness_weights'::regclass, 0) o
UNION ALL
SELECT o.type, o.identity
  FROM unnest(ARRAY[
         '{{schema}}.insert_unique_job_v2(text, text, integer, jsonb, integer, timestamptz, double precision, uuid,
                                          text, double precision, text)'::regprocedure,
         '{{schema}}.create_job(text, jsonb, bigint, timestamptz, double precision, bigint, double precision, uuid, text,
                                text, double precision, bigint[], text)'::regprocedure,
         '{{schema}}.create_brief_with_job(text, text, text, text, text, boolean, text[], jsonb, bigint, bigint, text,
                                           text)'::regprocedure]) f
 CROSS JOIN LATERAL pg_identify_object('pg_proc'::regclass, f, 0) o
ON CONFLICT DO NOTHING;
