-- 0025: the SQL API refuses what the Python API refuses, with the same message and the field named.
--
-- check_json_depth: its shortcut skipped documents of exactly 2 * (max + 1) characters, so max + 1 nested
-- empty arrays ([[...]]) passed create_job and create_jobs while Python refused them; the shortest document
-- that is too deep is that long, so the check now runs from that length on.
-- cancel_job, cancel_brief: the reason is checked as client.cancel_job and briefs.cancel_brief check it (a
-- non-blank string of at most rule max_reason_length characters) before anything is locked or changed.
-- check_job, create_job, create_brief_with_job, list_briefs, check_parents: every refusal names its field in
-- COLUMN and DETAIL (unique_key, unique_for, depends_on, media_type, use_pipeline, steps, options, status,
-- limit); create_brief_with_job passes on the field of its job's check (priority, max_attempts, queue)
-- instead of dropping it.
-- Bodies are otherwise those of 0002, 0003, 0008, 0019 and 0021; signatures, defaults and messages are
-- unchanged, so running workers and producers of the previous release are unaffected, except that a cancel
-- with an empty reason or one over the limit is now refused (22023) rather than stored.
--
-- rules: f248c75548283cc6

-- validation.check_json's depth rule: containers nested at most p_max_depth deep (a scalar is depth 0).
CREATE OR REPLACE FUNCTION {{schema}}.check_json_depth(p_field text, p_value jsonb, p_max_depth integer DEFAULT 64)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  -- Cheap first: p_max_depth + 1 nested containers take at least 2 * (p_max_depth + 1) characters (all empty
  -- arrays), so a shorter document cannot be too deep.
  IF length(p_value::text) >= 2 * (p_max_depth + 1)
     AND jsonb_path_exists(p_value, format('strict $.**{%s to last} ? (@.type() == "object" || @.type() == "array")',
                                           p_max_depth)::jsonpath) THEN
    PERFORM {{schema}}.raise_invalid(format('%s is nested more than %s levels deep', p_field, p_max_depth), p_field);
  END IF;
END $$;

-- As in 0003, after client.cancel_job's check of the reason.
CREATE OR REPLACE FUNCTION {{schema}}.cancel_job(p_job_id bigint, p_reason text DEFAULT 'cancelled by request')
RETURNS {{schema}}.job_status
LANGUAGE plpgsql AS $$
DECLARE
  v_was {{schema}}.job_status;
BEGIN
  PERFORM {{schema}}.check_text('reason', p_reason, {{rule:max_reason_length}});
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

-- As in 0002, after briefs.cancel_brief's check of the reason (before any step is locked).
CREATE OR REPLACE FUNCTION {{schema}}.cancel_brief(p_brief_id uuid, p_reason text DEFAULT 'brief cancelled by request')
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_ids bigint[];
  v_id bigint;
  v_count integer;
BEGIN
  PERFORM {{schema}}.check_text('reason', p_reason, {{rule:max_reason_length}});
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
END $$;

-- As in 0019; a refusal names depends_on.
CREATE OR REPLACE FUNCTION {{schema}}.check_parents(p_label text, p_ids bigint[]) RETURNS {{schema}}.job_status
LANGUAGE plpgsql
AS $$
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
END $$;

CREATE OR REPLACE FUNCTION {{schema}}.check_job(type text, payload jsonb, priority bigint, run_at timestamp with time zone, delay double precision, max_attempts bigint, timeout double precision, queue text, unique_key text, unique_for double precision, depends_on bigint[])
 RETURNS void
 LANGUAGE plpgsql
 STABLE
AS $$
DECLARE
  v_ref bigint;
BEGIN
  PERFORM {{schema}}.check_text('type', check_job.type, {{rule:max_type_length}});
  PERFORM {{schema}}.check_text('queue', check_job.queue, {{rule:max_type_length}});
  IF check_job.payload IS NOT NULL THEN
    PERFORM {{schema}}.check_json_depth('payload', check_job.payload, {{rule:max_payload_depth}});
  END IF;
  IF check_job.priority IS NULL OR check_job.priority NOT BETWEEN {{rule:min_int32}} AND {{rule:max_int32}} THEN
    PERFORM {{schema}}.raise_invalid({{rule:priority_message}}, 'priority');
  END IF;
  IF check_job.max_attempts IS NULL OR check_job.max_attempts NOT BETWEEN 1 AND {{rule:max_int32}} THEN
    PERFORM {{schema}}.raise_invalid({{rule:max_attempts_message}}, 'max_attempts');
  END IF;
  IF check_job.timeout IS NOT NULL THEN
    PERFORM {{schema}}.check_seconds('timeout', check_job.timeout, {{rule:max_timeout_seconds}}, true);
  END IF;
  IF check_job.run_at IS NOT NULL AND check_job.delay IS NOT NULL THEN
    PERFORM {{schema}}.raise_invalid('give run_at or delay, not both', 'delay');
  END IF;
  IF check_job.run_at IS NOT NULL
     AND NOT (check_job.run_at >= {{rule:min_run_at}} AND check_job.run_at < {{rule:max_run_at}}) THEN
    PERFORM {{schema}}.raise_invalid({{rule:run_at_message}} || check_job.run_at,
      'run_at');
  END IF;
  IF check_job.delay IS NOT NULL THEN
    PERFORM {{schema}}.check_seconds('delay', check_job.delay, {{rule:max_delay_seconds}}, false);
  END IF;
  IF check_job.unique_key IS NOT NULL THEN
    PERFORM {{schema}}.check_text('unique_key', check_job.unique_key, {{rule:max_unique_key_length}}, true);
    IF check_job.unique_key = '' THEN
      PERFORM {{schema}}.raise_invalid({{rule:unique_key_message}}, 'unique_key');
    END IF;
  END IF;
  IF check_job.unique_for IS NOT NULL THEN
    IF check_job.unique_key IS NULL THEN
      PERFORM {{schema}}.raise_invalid('unique_for needs a unique_key', 'unique_for');
    END IF;
    PERFORM {{schema}}.check_seconds('unique_for', check_job.unique_for, {{rule:max_hold_seconds}}, true);
  END IF;
  -- dependencies.check_depends_on
  FOREACH v_ref IN ARRAY coalesce(check_job.depends_on, '{}') LOOP
    IF v_ref IS NULL OR v_ref < 1 THEN
      PERFORM {{schema}}.raise_invalid('depends_on entries must be job ids, not ' || coalesce(v_ref::text, 'None'),
                                       'depends_on');
    END IF;
  END LOOP;
  IF (SELECT count(DISTINCT r) FROM unnest(check_job.depends_on) r) > {{rule:max_dependencies}} THEN
    PERFORM {{schema}}.raise_invalid(format('a job may depend on at most %s jobs, not %s', {{rule:max_dependencies}},
                                            (SELECT count(DISTINCT r) FROM unnest(check_job.depends_on) r)), 'depends_on');
  END IF;
END $$;

CREATE OR REPLACE FUNCTION {{schema}}.create_job(type text, payload jsonb DEFAULT '{}'::jsonb, priority bigint DEFAULT 0, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, delay double precision DEFAULT NULL::double precision, max_attempts bigint DEFAULT {{rule:default_max_attempts}}, timeout double precision DEFAULT NULL::double precision, brief_id uuid DEFAULT NULL::uuid, queue text DEFAULT 'default'::text, unique_key text DEFAULT NULL::text, unique_for double precision DEFAULT NULL::double precision, depends_on bigint[] DEFAULT NULL::bigint[], fairness_key text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $$
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
    PERFORM {{schema}}.check_text('fairness_key', create_job.fairness_key, {{rule:max_fairness_key_length}}, true);
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
END $$;

CREATE OR REPLACE FUNCTION {{schema}}.create_brief_with_job(user_id text DEFAULT NULL::text, title text DEFAULT ''::text, description text DEFAULT ''::text, query text DEFAULT NULL::text, media_type text DEFAULT NULL::text, use_pipeline boolean DEFAULT false, steps text[] DEFAULT NULL::text[], options jsonb DEFAULT NULL::jsonb, priority bigint DEFAULT 0, max_attempts bigint DEFAULT {{rule:default_max_attempts}}, queue text DEFAULT 'default'::text, fairness_key text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $$
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
  PERFORM {{schema}}.check_text('user_id', create_brief_with_job.user_id, {{rule:max_user_id_length}});
  PERFORM {{schema}}.check_text('title', create_brief_with_job.title, {{rule:max_title_length}}, true);
  PERFORM {{schema}}.check_text('description', create_brief_with_job.description, {{rule:max_text_length}}, true);
  PERFORM {{schema}}.check_text('query', create_brief_with_job.query, {{rule:max_text_length}});
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
    IF coalesce(cardinality(create_brief_with_job.steps), 0) NOT BETWEEN 1 AND {{rule:max_steps}} THEN
      PERFORM {{schema}}.raise_invalid({{rule:steps_message}}, 'steps');
    END IF;
    FOREACH v_step IN ARRAY create_brief_with_job.steps LOOP
      IF v_step IS NULL OR {{schema}}.is_blank(v_step) OR length(v_step) > {{rule:max_type_length}} THEN
        PERFORM {{schema}}.raise_invalid({{rule:step_message}} || {{schema}}.repr(v_step), 'steps');
      END IF;
    END LOOP;
    v_plan := create_brief_with_job.steps;
  END IF;
  IF create_brief_with_job.fairness_key IS NOT NULL THEN
    PERFORM {{schema}}.check_text('fairness_key', create_brief_with_job.fairness_key, {{rule:max_fairness_key_length}}, true);
  END IF;
  IF create_brief_with_job.options IS NOT NULL THEN
    IF jsonb_typeof(create_brief_with_job.options) <> 'object' THEN
      PERFORM {{schema}}.raise_invalid('options must be a mapping of extra payload fields', 'options');
    END IF;
    PERFORM {{schema}}.check_json_depth('options', create_brief_with_job.options, {{rule:max_payload_depth}});
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
END $$;

CREATE OR REPLACE FUNCTION {{schema}}.list_briefs(user_id text DEFAULT NULL::text, status text DEFAULT NULL::text, before timestamp with time zone DEFAULT NULL::timestamp with time zone, "limit" integer DEFAULT 50)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
AS $$
BEGIN
  IF list_briefs.status IS NOT NULL
     AND list_briefs.status NOT IN ('failed', 'cancelled', 'completed', 'processing', 'pending') THEN
    PERFORM {{schema}}.raise_invalid(format('status must be one of failed, cancelled, completed, processing, pending, '
                                            'not %s', {{schema}}.repr(list_briefs.status)), 'status');
  END IF;
  IF list_briefs."limit" IS NULL OR list_briefs."limit" NOT BETWEEN 1 AND {{rule:max_list_limit}} THEN
    PERFORM {{schema}}.raise_invalid({{rule:list_limit_message}}, 'limit');
  END IF;
  IF list_briefs.user_id IS NOT NULL THEN
    PERFORM {{schema}}.check_text('user_id', list_briefs.user_id, {{rule:max_user_id_length}});
  END IF;
  RETURN coalesce((
    SELECT jsonb_agg(to_jsonb(b) ORDER BY b.created_at DESC, b.id)
      FROM (SELECT * FROM {{schema}}.briefs_with_status w
             WHERE (list_briefs.user_id IS NULL OR w.user_id = list_briefs.user_id)
               AND (list_briefs.status IS NULL OR w.status = list_briefs.status)
               AND (list_briefs.before IS NULL OR w.created_at < list_briefs.before)
             ORDER BY w.created_at DESC, w.id
             LIMIT list_briefs."limit") b), '[]'::jsonb);
END $$;
